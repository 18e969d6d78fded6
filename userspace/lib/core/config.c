/* config.c - the site configuration file (see config.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"

/* Every key the file may hold, and the variable it is the default of. */
static const struct {
  const char *key;
  const char *env;              /* NULL: read with config_get */
} keys[] = {
  { "registry", "REPVOL_REGISTRY" },
  { "tls-dir",  "REPVOL_TLS_DIR" },
  { "tls-psk",  "REPVOL_TLS_PSK" },
  { "run-dir",  "REPVOL_RUN_DIR" },
  { "zone",     NULL },
  /* repvold's own (a server's file, repvold@.service): */
  { "data-dir", NULL },
  { "listen",   NULL },
  { "advertise", NULL },
  { "name",     NULL },
};
#define NKEYS ARRAY_SIZE (keys)

static char *values[NKEYS];
static char path_used[CONFIG_LINE_MAX];

void
config_reset (void)
{
  for (size_t i = 0; i < NKEYS; i++) {
    free (values[i]);
    values[i] = NULL;
  }
  path_used[0] = '\0';
}

static char *
trim (char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  char *end = s + strlen (s);
  while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
    *--end = '\0';
  return s;
}

/* One line (NUL-terminated, no newline) into the table. */
static int
parse_line (const char *name, unsigned no, char *line, struct error *err)
{
  char *s = trim (line), *eq, *key, *val;
  size_t i;

  if (*s == '\0' || *s == '#')
    return 0;
  if ((eq = strchr (s, '=')) == NULL)
    return error_set (err, EINVAL, "%s:%u: expected \"key = value\"", name,
                      no);
  *eq = '\0';
  key = trim (s);
  val = trim (eq + 1);
  for (i = 0; i < NKEYS && strcmp (keys[i].key, key) != 0; i++)
    ;
  if (i == NKEYS) {
    char known[256] = "";
    for (size_t k = 0; k < NKEYS; k++)
      snprintf (known + strlen (known), sizeof known - strlen (known),
                "%s%s", k ? ", " : "", keys[k].key);
    return error_set (err, EINVAL, "%s:%u: unknown key \"%.64s\" (known: "
                      "%s)", name, no, key, known);
  }
  if (*val == '\0')
    return error_set (err, EINVAL, "%s:%u: %s has no value", name, no, key);
  if (values[i])
    return error_set (err, EINVAL, "%s:%u: %s given twice", name, no, key);
  if ((values[i] = strdup (val)) == NULL)
    return error_set (err, ENOMEM, "%s: out of memory", name);
  return 0;
}

int
config_parse (const char *name, const char *text, size_t len,
              struct error *err)
{
  char line[CONFIG_LINE_MAX];
  unsigned no = 0;
  size_t pos = 0;
  int r;

  config_reset ();
  while (pos < len) {
    const char *nl = memchr (text + pos, '\n', len - pos);
    size_t n = (nl ? (size_t) (nl - text) : len) - pos;
    no++;
    if (n >= sizeof line) {
      r = error_set (err, EINVAL, "%s:%u: line longer than %d bytes", name,
                     no, CONFIG_LINE_MAX - 1);
      goto fail;
    }
    if (memchr (text + pos, '\0', n)) {
      r = error_set (err, EINVAL, "%s:%u: a NUL byte", name, no);
      goto fail;
    }
    memcpy (line, text + pos, n);
    line[n] = '\0';
    if ((r = parse_line (name, no, line, err)) < 0)
      goto fail;
    pos += n + 1;
  }
  if (config_get ("tls-dir") && config_get ("tls-psk")) {
    r = error_set (err, EINVAL, "%s: tls-dir and tls-psk: give one", name);
    goto fail;
  }
  return 0;

 fail:
  config_reset ();
  return r;
}

const char *
config_get (const char *key)
{
  for (size_t i = 0; i < NKEYS; i++)
    if (strcmp (keys[i].key, key) == 0)
      return values[i];
  return NULL;
}

const char *
config_path (void)
{
  return path_used[0] ? path_used : NULL;
}

#define CONFIG_SIZE_MAX (64 * 1024)

int
config_load (struct error *err)
{
  const char *env = getenv ("REPVOL_CONFIG");
  const char *path = env && *env ? env : CONFIG_DEFAULT_PATH;
  char *text = NULL;
  size_t len = 0;
  FILE *f;
  int r;

  config_reset ();
  if ((f = fopen (path, "re")) == NULL) {
    if (errno == ENOENT && !(env && *env))
      return 0;                 /* no site file: nothing to apply */
    return error_set (err, errno, "%s: %s%s", path, strerror (errno),
                      env && *env ? " (from $REPVOL_CONFIG)" : "");
  }
  if ((text = malloc (CONFIG_SIZE_MAX + 1)) == NULL) {
    fclose (f);
    return error_set (err, ENOMEM, "%s: out of memory", path);
  }
  len = fread (text, 1, CONFIG_SIZE_MAX + 1, f);
  r = ferror (f) ? -EIO : 0;
  fclose (f);
  if (r == 0 && len > CONFIG_SIZE_MAX)
    r = error_set (err, EFBIG, "%s: larger than %d KiB", path,
                   CONFIG_SIZE_MAX / 1024);
  else if (r < 0)
    error_set (err, EIO, "%s: read error", path);
  else
    r = config_parse (path, text, len, err);
  free (text);
  if (r < 0)
    return r;
  snprintf (path_used, sizeof path_used, "%s", path);

  /* The environment wins over the file; the TLS pair is one setting. */
  bool tls_env = getenv ("REPVOL_TLS_DIR") || getenv ("REPVOL_TLS_PSK");
  for (size_t i = 0; i < NKEYS; i++) {
    if (!keys[i].env || !values[i])
      continue;
    if (tls_env && strncmp (keys[i].key, "tls-", 4) == 0)
      continue;
    if (setenv (keys[i].env, values[i], 0) < 0)
      return error_set (err, errno, "%s: setenv %s: %s", path, keys[i].env,
                        strerror (errno));
  }
  return 0;
}
