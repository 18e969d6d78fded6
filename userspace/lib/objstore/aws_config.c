/* aws_config.c - AWS credentials, region and endpoint from the
 * environment and the shared config files (see aws_config.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore/aws_config.h"
#include "objstore/objstore_backend.h"

/* The keys we read from a profile's section. */
enum {
  K_ACCESS, K_SECRET, K_TOKEN, K_REGION, K_ENDPOINT, K_S3_ENDPOINT, K_MAX
};
static const char *const key_names[K_MAX] = {
  "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
  "region", "endpoint_url", "s3.endpoint_url",
};

struct profile_vals {
  char *v[K_MAX];
};

static void
vals_free (struct profile_vals *p)
{
  for (int i = 0; i < K_MAX; i++)
    free (p->v[i]);
}

/* An environment variable, or NULL when unset or empty. */
static const char *
env (const char *name)
{
  const char *s = objstore_getenv (name);
  return s && *s ? s : NULL;
}

static char *
trim (char *s)
{
  while (isspace ((unsigned char) *s))
    s++;
  size_t n = strlen (s);
  while (n > 0 && isspace ((unsigned char) s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* Does "[ header ]" (already trimmed, brackets removed) name the
 * profile?  The credentials file uses "[NAME]"; the config file uses
 * "[profile NAME]", except for "[default]".
 */
static bool
section_matches (char *hdr, const char *profile, bool config_file)
{
  hdr = trim (hdr);
  if (config_file) {
    if (strncmp (hdr, "profile", 7) == 0 && isspace ((unsigned char) hdr[7]))
      return strcmp (trim (hdr + 8), profile) == 0;
    return strcmp (profile, "default") == 0 && strcmp (hdr, "default") == 0;
  }
  return strcmp (hdr, profile) == 0;
}

/* Read the profile's keys from an INI file into p (later lines win).
 * Returns 0 (also when the file does not exist: *found = false), or a
 * negative errno with err filled when it exists but cannot be read.
 */
static int
read_profile (const char *path, const char *profile, bool config_file,
              struct profile_vals *p, bool *found, struct error *err)
{
  FILE *f = fopen (path, "re");
  *found = false;
  if (f == NULL) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR)
      return 0;
    return error_set (err, e, "%s: %s", path, strerror (e));
  }

  char *line = NULL;
  size_t cap = 0;
  bool in_section = false;
  char sub[32] = "";            /* "s3" while inside "s3 =" */
  while (getline (&line, &cap, f) != -1) {
    bool indented = line[0] == ' ' || line[0] == '\t';
    char *s = trim (line);
    if (*s == '\0' || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      char *end = strrchr (s, ']');
      sub[0] = '\0';
      if (end == NULL) {
        in_section = false;
        continue;
      }
      *end = '\0';
      in_section = section_matches (s + 1, profile, config_file);
      *found |= in_section;
      continue;
    }
    if (!in_section)
      continue;
    char *eq = strchr (s, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    char *key = trim (s), *val = trim (eq + 1);
    /* An inline comment needs whitespace before it: "region = x # y".
     * Keys and secrets never hold whitespace, so this cuts nothing real.
     */
    for (char *c = val; *c; c++)
      if ((*c == '#' || *c == ';') && c > val && isspace ((unsigned char) c[-1])) {
        *c = '\0';
        val = trim (val);
        break;
      }
    if (!indented)
      sub[0] = '\0';
    if (!indented && *val == '\0') {
      /* "s3 =" opens a nested block of indented "key = value" lines. */
      snprintf (sub, sizeof sub, "%s", key);
      continue;
    }
    char full[96];
    if (indented && sub[0])
      snprintf (full, sizeof full, "%s.%s", sub, key);
    else
      snprintf (full, sizeof full, "%s", key);
    for (int i = 0; i < K_MAX; i++)
      if (strcmp (full, key_names[i]) == 0) {
        char *copy = strdup (val);
        if (copy == NULL) {
          free (line);
          fclose (f);
          return error_set (err, ENOMEM, "%s: out of memory", path);
        }
        free (p->v[i]);
        p->v[i] = copy;
      }
  }
  free (line);
  fclose (f);
  return 0;
}

/* AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE or the default under
 * $HOME/.aws, with a leading "~/" expanded.
 */
static char *
file_path (const char *var, const char *dflt)
{
  const char *p = env (var);
  const char *home = env ("HOME");
  char *out;

  if (p == NULL) {
    if (asprintf (&out, "%s/.aws/%s", home ? home : "", dflt) == -1)
      return NULL;
    return out;
  }
  if (strncmp (p, "~/", 2) == 0 && home) {
    if (asprintf (&out, "%s/%s", home, p + 2) == -1)
      return NULL;
    return out;
  }
  return strdup (p);
}

/* *dst = a copy of src (NULL stays NULL).  0 or -ENOMEM. */
static int
set (char **dst, const char *src)
{
  if (src == NULL)
    return 0;
  *dst = strdup (src);
  return *dst ? 0 : -ENOMEM;
}

void
aws_config_free (struct aws_config *cfg)
{
  free (cfg->profile);
  free (cfg->access_key_id);
  free (cfg->secret_access_key);
  free (cfg->session_token);
  free (cfg->region);
  free (cfg->endpoint_url);
  free (cfg->credentials_from);
  memset (cfg, 0, sizeof *cfg);
}

static bool
given (const char *s)
{
  return s && *s;
}

int
aws_config_load (struct aws_config *cfg, struct error *err)
{
  struct profile_vals cred = { { 0 } }, conf = { { 0 } };
  bool cred_found, conf_found;
  char *cred_path = NULL, *conf_path = NULL;
  const char *ak = env ("AWS_ACCESS_KEY_ID");
  const char *sk = env ("AWS_SECRET_ACCESS_KEY");
  int r = -EINVAL;

  memset (cfg, 0, sizeof *cfg);
  if (set (&cfg->profile, env ("AWS_PROFILE") ?: "default") < 0)
    goto oom;
  cred_path = file_path ("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  conf_path = file_path ("AWS_CONFIG_FILE", "config");
  if (cred_path == NULL || conf_path == NULL)
    goto oom;
  if ((r = read_profile (cred_path, cfg->profile, false, &cred, &cred_found,
                         err)) < 0 ||
      (r = read_profile (conf_path, cfg->profile, true, &conf, &conf_found,
                         err)) < 0)
    goto out;
  r = -EINVAL;

  /* Credentials come as a set from one place, never a key from here
   * and a secret or token from there.
   */
  if (ak && sk) {
    if (set (&cfg->access_key_id, ak) < 0 ||
        set (&cfg->secret_access_key, sk) < 0 ||
        set (&cfg->session_token, env ("AWS_SESSION_TOKEN")) < 0 ||
        set (&cfg->credentials_from, "environment") < 0)
      goto oom;
  }
  else if (ak || sk) {
    error_set (err, EINVAL, "%s is set but %s is not",
               ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
               ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    goto out;
  }
  else {
    struct profile_vals *src = NULL;
    const char *from = NULL;
    /* "aws_access_key_id =" with nothing after it is no key. */
    if (given (cred.v[K_ACCESS]) && given (cred.v[K_SECRET]))
      src = &cred, from = cred_path;
    else if (given (conf.v[K_ACCESS]) && given (conf.v[K_SECRET]))
      src = &conf, from = conf_path;
    if (src == NULL) {
      error_set (err, EINVAL, "no AWS credentials: AWS_ACCESS_KEY_ID and "
                 "AWS_SECRET_ACCESS_KEY are not set, and profile \"%s\" has "
                 "no aws_access_key_id/aws_secret_access_key in %s (%s) "
                 "or %s (%s)", cfg->profile,
                 cred_path, cred_found ? "profile present"
                 : access (cred_path, F_OK) == 0 ? "no such profile"
                 : "not found",
                 conf_path, conf_found ? "profile present"
                 : access (conf_path, F_OK) == 0 ? "no such profile"
                 : "not found");
      goto out;
    }
    if (set (&cfg->access_key_id, src->v[K_ACCESS]) < 0 ||
        set (&cfg->secret_access_key, src->v[K_SECRET]) < 0 ||
        set (&cfg->session_token, src->v[K_TOKEN]) < 0 ||
        set (&cfg->credentials_from, from) < 0)
      goto oom;
  }

  if (set (&cfg->region, env ("AWS_REGION") ?: env ("AWS_DEFAULT_REGION")
           ?: conf.v[K_REGION] ?: "us-east-1") < 0)
    goto oom;
  const char *ep = env ("AWS_ENDPOINT_URL_S3") ?: env ("AWS_ENDPOINT_URL")
    ?: conf.v[K_S3_ENDPOINT] ?: conf.v[K_ENDPOINT];
  if (set (&cfg->endpoint_url, ep) < 0)
    goto oom;
  if (cfg->region[0] == '\0' || strpbrk (cfg->region, " \t/:") != NULL) {
    error_set (err, EINVAL, "region \"%s\" is not a region name",
               cfg->region);
    goto out;
  }
  if (cfg->endpoint_url &&
      strncmp (cfg->endpoint_url, "http://", 7) != 0 &&
      strncmp (cfg->endpoint_url, "https://", 8) != 0) {
    error_set (err, EINVAL,
               "endpoint \"%s\" is not an http:// or https:// URL",
               cfg->endpoint_url);
    goto out;
  }
  r = 0;
  goto out;

 oom:
  r = error_set (err, ENOMEM, "AWS configuration: out of memory");
 out:
  vals_free (&cred);
  vals_free (&conf);
  free (cred_path);
  free (conf_path);
  if (r < 0)
    aws_config_free (cfg);
  return r;
}
