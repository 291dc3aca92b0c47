// Package field names configuration fields and what is wrong with them, so
// that the one Validate each CA backend owns can say which YAML key is bad
// and the agent's loader can put the file and line in front of it.
//
// An Error's Path is relative to the section that was validated (auth.role
// for ca/vault); the caller that embeds the section adds its own prefix
// with List.Prefix. A List keeps errors in the order they were added, so a
// Validate that adds them in a fixed order reports them in that order.
// Default fills an unset field. The checks (Absolute, OneOf, Duration, Int,
// HTTPS, HTTP) word their messages as the agent's config errors always
// have, since users and tests read them.
package field
