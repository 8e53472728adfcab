// typage (the age-encryption npm package) for strongroom's interop test, tests/age_pq.rs.
//   node interop.mjs keygen                     -> prints a hybrid identity, then its recipient
//   node interop.mjs decrypt IDENTITY_FILE IN   -> decrypts IN, prints the plaintext
//   node interop.mjs encrypt RECIPIENT IN OUT   -> encrypts IN to RECIPIENT into OUT
import { readFileSync, writeFileSync } from "node:fs";
import * as age from "age-encryption";

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "keygen") {
  const identity = await age.generateHybridIdentity();
  process.stdout.write(identity + "\n" + (await age.identityToRecipient(identity)) + "\n");
} else if (cmd === "decrypt") {
  const d = new age.Decrypter();
  for (const line of readFileSync(args[0], "utf8").split("\n")) {
    if (line.trim() !== "" && !line.startsWith("#")) d.addIdentity(line.trim());
  }
  process.stdout.write(await d.decrypt(readFileSync(args[1]), "text"));
} else if (cmd === "encrypt") {
  const e = new age.Encrypter();
  e.addRecipient(args[0]);
  writeFileSync(args[2], await e.encrypt(readFileSync(args[1])));
} else {
  console.error("usage: interop.mjs keygen | decrypt ID FILE | encrypt RECIPIENT IN OUT");
  process.exit(2);
}
