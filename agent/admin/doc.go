// Package admin serves the agent's operator API (adminpb) on a Unix socket
// of its own.
//
// The socket is created with mode 0600 and owned by root or by the
// configured admin uid, and every call is checked again against the
// caller's kernel-reported uid: only root and the socket's owner get in,
// whatever the file's permissions become later. Rotations are scheduled and
// return at once; their effect reaches workloads through their open streams.
package admin
