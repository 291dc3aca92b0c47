// Package helperconf reads spiffe-helper's configuration file (helper.conf,
// HCL) so that `sworn svid write --config helper.conf` accepts a file
// written for spiffe-helper as it is.
//
// It owns the file format only: which keys exist, their types, spiffe-helper's
// defaults and its cross-field rules. Guarantees:
//
//   - Every error names the file and line ("helper.conf:7: unknown key
//     \"svid_fle_name\""); an unknown key, a key set twice or a value of the
//     wrong type is an error, never ignored.
//   - Parse never panics, whatever the input (held by FuzzParse): HCL's own
//     value conversion panics on malformed literals, so values are converted
//     here, with errors.
//   - A file mode is a permission mode (0 to 0777); a decimal 600 written for
//     0600 is refused rather than read as 01130.
//
// What the settings mean (and which key modes are refused) is decided by the
// caller, cmd/sworn/cli.
package helperconf
