// Package unixsock opens the Unix sockets sworn serves on.
//
// Guarantees of Listen:
//   - The socket's directory is created 0755 whatever the umask, so that
//     clients of other uids can reach the socket.
//   - Something already at the path is replaced only if it is a socket
//     nobody answers on (one left by a process that died): a regular file,
//     a directory or a link is refused, and so is a socket another process
//     still serves, so two agents never steal each other's socket.
//   - The socket has exactly the requested mode (and owner, if asked)
//     before Listen returns, and closing the listener does not unlink it:
//     the caller removes it when it is done, after a clean stop.
//   - The mode and owner are set on the socket Listen created, never
//     through a link: if the path was replaced after bind (by someone who
//     can write the directory), Listen fails and leaves what is there as it
//     is, so a root process is never made to chmod or chown another file.
package unixsock
