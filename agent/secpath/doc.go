// Package secpath decides whether the agent may trust files on disk, in
// the manner of OpenSSH's StrictModes (its secure_path check), and creates
// directories with exact modes.
//
// Guarantee: CheckTree(root, uid) returns nil only if
//   - root and every directory above it up to / is owned by root or uid and
//     is not writable by group or others, except that a directory above root
//     may be writable by everyone when it has the sticky bit (like /tmp):
//     then nobody else can rename or remove the entry the agent uses;
//   - root itself, when it exists, and every file and directory beneath it
//     is owned by root or uid and is not writable by group or others (no
//     sticky exception: in a sticky data directory anyone could still add a
//     file, such as a CA);
//   - every symbolic link met, in the path or beneath root, resolves to a
//     target that passes the same checks.
//
// So nobody but root and uid can have put, replaced or changed what the
// agent loads from root, as long as the check ran before the load and no
// one with those rights changes the modes in between. Ownership is
// checked on Linux only; elsewhere only the mode bits are. Access control
// lists and Linux capabilities (such as CAP_DAC_OVERRIDE held by another
// process) are not considered.
//
// Unreachable reports a directory on a path that other users cannot
// traverse, which makes a socket in it unusable to them; MkdirAll creates
// directories with the exact mode asked for, whatever the umask, setting
// it on the directory it made: a link put in its place meanwhile makes it
// fail, its target untouched.
package secpath
