//! The keyholder core, re-exported from `strongroom-keyholder` so that `strongroom_recovery::
//! Keyholder` and friends keep working.

pub(crate) use strongroom_keyholder::{
    Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext, stanza_aad,
};
