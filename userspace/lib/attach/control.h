/* control.h - the control channel of a running "repvol attach": a unix
 * socket on which other repvol commands (verify, replica replace) ask
 * the attach to act on its live volume.
 *
 * Line based: the client sends one command line; the server answers
 * with any number of lines and ends with one that starts "ok" or
 * "error", then closes.
 */
#ifndef REPVOL_CONTROL_H
#define REPVOL_CONTROL_H

#include "core/loop.h"

struct control;
struct control_req;

/* Listen on path (a stale socket there is replaced).  handler runs for
 * each command line; it answers through control_reply / control_finish,
 * now or later.  NULL (logged) on failure.
 */
struct control *control_start (struct loop *loop, const char *path,
                               void (*handler) (struct control_req *req,
                                                const char *line,
                                                void *opaque),
                               void *opaque);
void control_reply (struct control_req *req, const char *line);
void control_finish (struct control_req *req, const char *line);
/* Stop listening and remove the socket (unless another has replaced it). */
void control_stop (struct control *c);

/* Command words may not hold spaces or newlines: quote turns such a
 * string into one word (%XX escapes; malloc'd), unquote undoes it in
 * place.
 */
char *control_quote (const char *s);
void control_unquote (char *s);

/* Client: send command to the attach listening on path, print each
 * answer line to stdout.  Returns 0 if the last line starts with "ok",
 * 1 if with "error" (or the channel broke), after printing a reason.
 */
int control_call (const char *path, const char *command);
/* The same, handing each answer line to fn instead of printing it. */
int control_call_lines (const char *path, const char *command,
                        void (*fn) (void *opaque, const char *line),
                        void *opaque);

/* The same with a bound, and saying how it ended: CONTROL_OK, _ERROR
 * (the last line), _NO_ANSWER (the channel closed before an ending
 * line: the attach died, or exited without answering), _TIMEOUT
 * (timeout_ms passed; -1: no bound), _UNREACHABLE (no connection, or
 * the command could not be sent; errno says why).  Logs nothing.  fn
 * NULL prints each line to stdout.
 */
enum { CONTROL_OK, CONTROL_ERROR, CONTROL_NO_ANSWER, CONTROL_TIMEOUT,
       CONTROL_UNREACHABLE };
int control_call_timeout (const char *path, const char *command,
                          void (*fn) (void *opaque, const char *line),
                          void *opaque, int timeout_ms);

#endif
