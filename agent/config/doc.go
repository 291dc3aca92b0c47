// Package config reads the agent's YAML configuration.
//
// Decoding is strict: an unknown key or a value of the wrong type is an
// error, and so is any value that fails validation (a bad trust domain, a
// TTL out of range, a rule that does not compile). Every error names the
// file, the line and the field, and all of them are reported at once, so a
// bad file is refused at start and fixed in one pass, in the order of the
// lines they name. Defaults are filled in before validation, so a
// validated Config is complete.
//
// A CA backend's section (ca.local, ca.vault, ca.stepca) is that backend's
// own Config, decoded as it stands: its keys, defaults and validation live
// in the backend, once; this package adds the file and line, and only the
// checks that need the whole file (a local CA outliving six SVIDs).
package config
