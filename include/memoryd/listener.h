/*
 * listener.h — memoryd's own listening socket and accept thread (pool mode).
 *
 * Why not libmicrohttpd's listener: in pool mode the event threads use epoll.
 * libmicrohttpd 0.9.75's poll() loop scans every connection on every wake-up
 * and allocates its descriptor array on every pass (when that allocation
 * fails, a connection a handler thread has just resumed is forgotten until
 * the next timeout); its epoll loop does neither. But libmicrohttpd 0.9.75
 * cannot stop listening on an epoll thread pool safely: MHD_quiesce_daemon()
 * races the event threads to take the listening socket out of their epoll
 * sets and aborts the process (MHD_PANIC) when it loses. So the socket is
 * ours: one thread accepts and hands each connection over (in memoryd,
 * MHD_add_connection); md_listener_close() closes the socket, after which
 * new clients are refused at once, as a graceful shutdown needs.
 *
 * The connection cap is enforced here: at most max_open connections are
 * handed over and not yet closed. At the cap the thread stops accepting and
 * further clients wait in the kernel's listen queue (beyond it the kernel
 * drops their SYNs and they retry) until a connection ends — never an
 * accepted-then-closed connection. The owner reports each connection's life:
 *
 *   handed over (hand() returned true)  counted at once, as "in transit"
 *   the server starts serving it        md_listener_opened()
 *   the server closes it                md_listener_closed()
 *
 * A connection in transit that is never opened (the server dropped it
 * without a word, e.g. out of memory) stops counting after a second, so a
 * lost hand-over cannot shrink the cap for good.
 *
 * Accept errors: EMFILE/ENFILE/ENOBUFS/ENOMEM pause accepting for 100 ms
 * (the clients wait in the queue meanwhile) with a rate-limited warning;
 * nothing spins.
 */
#ifndef MD_LISTENER_H
#define MD_LISTENER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "memoryd/status.h"

struct md_listener;

/*
 * Hand an accepted, non-blocking descriptor over. true: the receiver owns it;
 * false: refused, and the receiver has closed it (as MHD_add_connection does).
 */
typedef bool (*md_listener_hand_fn)(void *ctx, int fd, const struct sockaddr *addr,
                                    socklen_t addrlen);

/*
 * Bind and listen (SO_REUSEADDR; IPv6 sockets are v6-only), not yet accepting:
 * clients queue until md_listener_run(). NULL + err when the address cannot be
 * bound. max_open >= 1.
 */
struct md_listener *md_listener_open(const struct sockaddr *addr, socklen_t addrlen, int backlog,
                                     int max_open, struct md_error *err);

/* The port bound (useful with port 0). */
int md_listener_port(const struct md_listener *l);

/* Start the accept thread. false + err when no thread can be started. */
bool md_listener_run(struct md_listener *l, md_listener_hand_fn hand, void *ctx,
                     struct md_error *err);

/* A handed-over connection is being served / has been closed (thread-safe). */
void md_listener_opened(struct md_listener *l);
void md_listener_closed(struct md_listener *l);

/* Stop accepting and close the socket: new clients are refused from now on. */
void md_listener_close(struct md_listener *l);

/* Free it (after md_listener_close() and after the last md_listener_closed()). NULL ok. */
void md_listener_free(struct md_listener *l);

#endif
