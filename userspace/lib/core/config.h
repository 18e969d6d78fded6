/* config.h - the site configuration file, /etc/repvol/repvol.conf (or
 * $REPVOL_CONFIG), which every program reads at start: where the
 * registry is, the TLS credentials, the run directory, a server's zone.
 *
 * The file is "key = value" lines; blank lines and lines whose first
 * non-blank character is '#' are ignored.  Keys are named like the long
 * options they stand for.  A key the table does not know, a line
 * without '=', an empty value or a key given twice is an error naming
 * the file and the line; so is an unreadable file, and a $REPVOL_CONFIG
 * that names none (a missing default file is no error: nothing is set).
 *
 * Precedence: a command-line flag beats the environment, which beats
 * the file.  config_load() gives each key that has an environment
 * variable (registry -> REPVOL_REGISTRY, ...) the file's value only when
 * the variable is unset, so the programs, which already prefer their
 * flags to the environment, need nothing more; tls-dir and tls-psk are
 * one setting, so neither is taken from the file when either variable
 * is set.  Keys without a variable (zone; repvold's data-dir, listen,
 * advertise and name, for a server's own file) are read with
 * config_get().
 */
#ifndef REPVOL_CONFIG_H
#define REPVOL_CONFIG_H

#include <stddef.h>

struct error;

#define CONFIG_DEFAULT_PATH "/etc/repvol/repvol.conf"
#define CONFIG_LINE_MAX     1024

/* Read the file and apply it to the environment (see above).  0, or a
 * negative errno with "FILE:LINE: why" (or "FILE: why") in err.  Call
 * once, before any option or variable is looked at.
 */
int config_load (struct error *err);

/* The file's value for key, or NULL (not in the file, or no file). */
const char *config_get (const char *key);

/* The file config_load read, or NULL if there was none. */
const char *config_path (void);

/* Parse text (len bytes, named name in errors) into the table without
 * touching the environment: the parser alone, for tests and fuzzing.
 */
int config_parse (const char *name, const char *text, size_t len,
                  struct error *err);
void config_reset (void);

#endif
