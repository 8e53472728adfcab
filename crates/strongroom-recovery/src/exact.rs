//! Handing secret text to `secrecy` without leaving copies in freed memory.
//!
//! `SecretString::from(String)` and `SecretSlice::from(Vec)` convert with
//! `into_boxed_str` / `into_boxed_slice`, which reallocate when the capacity exceeds the
//! length: the old buffer is then freed without being zeroized. Text built in a buffer
//! sized for the worst case goes through [`exact`] first, which copies it into an
//! allocation of exactly its length and zeroizes the buffer it was built in.

use zeroize::{Zeroize, Zeroizing};

/// `built` with capacity equal to its length. When it has spare capacity, the text is copied
/// into an exact allocation and `built` is zeroized (whole capacity) before it is freed.
pub(crate) fn exact(mut built: String) -> String {
    if built.capacity() == built.len() {
        return built;
    }
    // `str::to_owned` allocates exactly `len` bytes.
    let copy = built.as_str().to_owned();
    built.zeroize();
    copy
}

/// Appends `c` to `buf`, growing it by hand when full: a bigger zeroizing buffer receives
/// the text and the old one is zeroized, instead of `String`'s own reallocation that frees
/// the old buffer as it is.
pub(crate) fn push(buf: &mut Zeroizing<String>, c: char) {
    if buf.len() + c.len_utf8() > buf.capacity() {
        let mut bigger = Zeroizing::new(String::with_capacity(
            (buf.capacity() * 2).max(buf.len() + c.len_utf8()),
        ));
        bigger.push_str(buf);
        // The old buffer is zeroized when it is dropped here.
        *buf = bigger;
    }
    buf.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_leaves_no_spare_capacity() {
        let mut s = String::with_capacity(64);
        s.push_str("correct horse");
        assert!(s.capacity() > s.len());
        let e = exact(s);
        assert_eq!(e, "correct horse");
        assert_eq!(e.capacity(), e.len());
        let already = "battery".to_owned();
        let ptr = already.as_ptr();
        let e = exact(already);
        assert_eq!(
            e.as_ptr(),
            ptr,
            "an exact string is passed through, not copied"
        );
    }

    #[test]
    fn push_grows_into_a_new_buffer() {
        let mut b = Zeroizing::new(String::with_capacity(2));
        for c in "ab\u{e9}cdef".chars() {
            push(&mut b, c);
        }
        assert_eq!(b.as_str(), "ab\u{e9}cdef");
        assert!(b.capacity() >= b.len());
        let mut empty = Zeroizing::new(String::new());
        push(&mut empty, '\u{1F511}');
        assert_eq!(empty.as_str(), "\u{1F511}");
    }

    #[test]
    fn push_grows_only_when_full_and_to_an_exact_size() {
        // Room for the character: the buffer stays where it is.
        let mut b = Zeroizing::new(String::with_capacity(3));
        push(&mut b, 'a');
        let ptr = b.as_ptr();
        push(&mut b, '\u{e9}');
        assert_eq!(b.as_ptr(), ptr, "grew although the character fitted");
        assert_eq!(b.capacity(), 3);
        // Full: it grows by hand to twice the capacity, never through `String`'s own
        // reallocation (which would round up to at least 8 bytes and free the old buffer
        // unwiped).
        let mut b = Zeroizing::new(String::with_capacity(2));
        push(&mut b, 'a');
        push(&mut b, '\u{e9}');
        assert_eq!(b.as_str(), "a\u{e9}");
        assert_eq!(b.capacity(), 4);
        // A character longer than twice the capacity: exactly what it needs.
        let mut b = Zeroizing::new(String::with_capacity(1));
        push(&mut b, '\u{1F511}');
        assert_eq!(b.capacity(), 4);
    }
}
