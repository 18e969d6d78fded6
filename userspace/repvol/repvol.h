/* repvol.h - what the repvol CLI's verb files share. */
#ifndef REPVOL_CLI_H
#define REPVOL_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry/registry.h"

struct json_object;

#define EXIT_USAGE 2            /* a malformed command line */

/* Set by --registry, before or after the verb; NULL means
 * $REPVOL_REGISTRY, then /var/lib/repvol (registry_open decides).
 * The CLI is single threaded: main() and the verb own it in turn.
 */
extern const char *cli_registry;

/* Set by --tls-dir / --tls-psk, before or after the verb; NULL means
 * $REPVOL_TLS_DIR / $REPVOL_TLS_PSK, then plaintext.  Loaded (into the
 * process's TLS client credentials, core/tls.h) when the verb's options
 * are parsed.
 */
extern const char *cli_tls_dir, *cli_tls_psk;

/* The options every verb takes; cli_getopt handles them. */
enum { CLI_OPT_REGISTRY = 'R', CLI_OPT_TLS_DIR = 0x1001, CLI_OPT_TLS_PSK,
       CLI_OPT_BYTES };
#define CLI_COMMON_OPTIONS \
  { "registry", required_argument, NULL, CLI_OPT_REGISTRY }, \
  { "tls-dir", required_argument, NULL, CLI_OPT_TLS_DIR }, \
  { "tls-psk", required_argument, NULL, CLI_OPT_TLS_PSK }

/* --bytes, for the verbs that print sizes (cli_getopt sets cli_bytes):
 * raw integers instead of "1.5 GiB" and "80 MiB/s".
 */
#define CLI_BYTES_OPTION { "bytes", no_argument, NULL, CLI_OPT_BYTES }
extern bool cli_bytes;

/* A size for people: "1.5 GiB" (format_size), or with --bytes the
 * integer.  rate_text: "80 MiB/s", or "83886080/s".  duration_text:
 * "12s", "3m20s", "2h05m".  Each returns buf.
 */
const char *size_text (uint64_t bytes, char *buf, size_t len);
const char *rate_text (uint64_t bytes_per_s, char *buf, size_t len);
const char *duration_text (uint64_t seconds, char *buf, size_t len);

/* Verbs: argv[0] is the verb name; returns the process exit code. */
int cmd_create (int argc, char **argv);
int cmd_list (int argc, char **argv);
int cmd_status (int argc, char **argv);
int cmd_attach (int argc, char **argv);
int cmd_detach (int argc, char **argv);
int cmd_delete (int argc, char **argv);
int cmd_verify (int argc, char **argv);
int cmd_replica (int argc, char **argv);
int cmd_snapshot (int argc, char **argv);
int cmd_epoch (int argc, char **argv);
int cmd_server (int argc, char **argv);
int cmd_events (int argc, char **argv);
int cmd_heal (int argc, char **argv);
int cmd_resize (int argc, char **argv);
int cmd_settings (int argc, char **argv);

/* "repvol snapshot SUBVERB": argv[0] is the sub-verb. */
int cmd_snapshot_create (int argc, char **argv);      /* cmd_snapshot.c */
int cmd_snapshot_restore (int argc, char **argv);     /* cmd_snapshot.c */
int cmd_snapshot_list (int argc, char **argv);        /* cmd_snapshot_catalog.c */
int cmd_snapshot_delete (int argc, char **argv);      /* cmd_snapshot_catalog.c */

/* A volume to create (cmd_create.c), for create and snapshot restore. */
struct volume_spec {
  const char *name;
  uint64_t size;
  uint64_t block_size;
  uint64_t chunk_size;
  const char *const *addrs;     /* ADDR:PORT or server names */
  int naddrs;                   /* 0: placed by the pool */
  int nreplicas;                /* with naddrs 0: how many (0: 2) */
  bool reserve, allow_same_zone;
  const struct reg_restore *restore;    /* NULL unless restoring */
  const char *cbt_base_url, *cbt_base_name;  /* restored from; NULL: none */
};
/* Check the servers, make the replicas, record the volume; errors are
 * printed.  Returns an exit code.
 */
int create_volume (struct registry *reg, const struct volume_spec *spec);

/* Each verb's --help text (main.c). */
void verb_help (const char *verb, bool to_stderr);

/* Print "repvol: error: VERB: MSG" and a pointer to --help; returns
 * EXIT_USAGE.
 */
int usage_error (const char *verb, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* getopt_long wrapper shared by the verbs: handles the common options
 * and --help itself, loads the TLS credentials at the end, turns unknown options and missing arguments into one
 * error line.  Returns the option character, -1 at the end, or
 * -2 - exit_code when the verb should return (help printed, or a usage
 * error).
 */
#define OPT_DONE(r) ((r) <= -2)
#define OPT_EXIT(r) (-(r) - 2)
int cli_getopt (int argc, char **argv, const char *verb,
                const struct option *longopts);

/* Exactly one positional VOL after the options, valid_name()d.
 * Returns it, or NULL after printing a usage error.
 */
const char *one_volume (int argc, char **argv, const char *verb);

/* Open the registry (errors already printed on failure). */
struct registry *open_registry (void);

/* registry_get that prints the one error line: "unknown volume" for
 * ENOENT, else the registry's reason; replicas at their servers'
 * current addresses in the pool.  0 or a negative errno.
 */
int get_volume (struct registry *r, const char *vol, struct reg_volume *v);

/* Append an event to the registry's stream; a failure is a warning. */
void note_event (struct registry *r, const char *type, const char *vol,
                 const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

/* The rest of most verbs' command line, after their options: exactly
 * one VOL, which must exist.  Opens the registry (*reg, for the caller
 * to close) and reads the volume into v.  Returns 0, or the exit code
 * to return (the error already printed; nothing left open).
 */
int verb_volume (int argc, char **argv, const char *verb, const char **vol,
                 struct registry **reg, struct reg_volume *v);

/* --heal-after and the heal-after setting: a duration up to 30 days,
 * 0 meaning never.  0 or -1.  default_heal_after: the registry's
 * setting (repvol settings), else ATTACH_HEAL_AFTER; a bad setting is
 * a warning.
 */
int parse_heal_after (const char *s, unsigned *out);
unsigned default_heal_after (struct registry *r);

/* cmd_heal.c: attach detached volume vol for one healing job (move: a
 * draining server to move its replica away from, or NULL).  What the
 * job says is printed, or added to lines (a JSON array) unless that is
 * NULL.  An exit code.
 */
int heal_detached (struct registry *reg, const char *vol,
                   unsigned heal_after, const char *move,
                   struct json_object *lines);

/* This host's name as attach records it. */
const char *this_host (void);

/* Is the recorded attachment on this host?  (attach_alive says whether
 * its process still runs.)
 */
bool attachment_is_local (const struct reg_attachment *a);

/* What is known of v's attachment's process: "none" (not attached),
 * "running" (on this host, alive), "gone" (on this host, exited: the
 * record is stale, and the next attach takes the volume over),
 * "remote" (on another host, its lease alive: only that host can tell
 * more) or "stale" (on another host, its lease expired: any host may
 * take the volume over).
 */
const char *attachment_state (const struct reg_volume *v);
/* Is v attached by an attach that still speaks for it: running on this
 * host, or on another with its lease alive?  (A CLI verb's hold counts.)
 */
bool attachment_live (const struct reg_volume *v);
/* Since when an attachment that is "gone" or "stale" has not spoken:
 * its last lease refresh (gone; 0 if it never had a lease), or its
 * lease's end (stale).  0 for the other states.
 */
time_t attachment_silent_since (const struct reg_volume *v);

/* Hold v for a CLI verb that must not run beside an attach ("repvol
 * delete", "repvol epoch --reset"): record an attachment with frontend
 * what (ATTACH_*_CLAIM) and this pid, which attach refuses.  Refused,
 * with the error printed, while an attach (or another hold) whose
 * process runs has the volume; a stale one on this host is replaced,
 * with a warning.  *mine gets the hold, for clear_attachment.  Returns
 * 0 or an exit code.
 */
int hold_volume (struct registry *r, const struct reg_volume *v,
                 const char *what, struct reg_attachment *mine);

/* Clear the attachment if it is still exactly a (same host, pid and
 * epoch).  Returns 0 if cleared, 1 if it had already changed, a
 * negative errno on a registry error (printed).
 */
int clear_attachment (struct registry *r, const char *vol,
                      const struct reg_attachment *a);

/* "2026-11-27 16:40:01 UTC" */
const char *format_time (time_t t, char *buf, size_t len);

/* Print o on stdout as json_object_to_json_string_ext (o, flags) does,
 * then a newline; flush, and drop o.  Every --json output goes through
 * here.
 */
void print_json (struct json_object *o, int flags);

#endif
