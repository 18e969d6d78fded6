/* libFuzzer harness for objstore/aws_config.c: the input is a shared
 * credentials file and a config file (~/.aws/credentials, ~/.aws/config),
 * written to a private directory that AWS_SHARED_CREDENTIALS_FILE and
 * AWS_CONFIG_FILE point at, then aws_config_load reads them.
 *
 * Input: one flags byte (which profile: default, dev or "a b"), then the
 * credentials file, a NUL, the config file.
 *
 * Invariants (abort on violation): a refusal says why; a success has an
 * access key and a secret from one of the two files, a region without
 * " \t/:" and an endpoint that is http(s)://, no value with whitespace at
 * either end or a newline; and the result written back as canonical
 * files loads again to the same result.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "objstore/aws_config.h"

static char dir[200], cred_path[256], conf_path[256];

static void
cleanup (void)
{
  unlink (cred_path);
  unlink (conf_path);
  rmdir (dir);
}

static void
write_file (const char *path, const void *b, size_t n)
{
  FILE *f = fopen (path, "w");
  if (f == NULL || fwrite (b, 1, n, f) != n || fclose (f) != 0)
    abort ();
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  const char *tmp = getenv ("TMPDIR");
  snprintf (dir, sizeof dir, "%s/fuzz_aws_config.XXXXXX",
            access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp ? tmp : "/tmp");
  if (mkdtemp (dir) == NULL)
    abort ();
  atexit (cleanup);
  snprintf (cred_path, sizeof cred_path, "%s/credentials", dir);
  snprintf (conf_path, sizeof conf_path, "%s/config", dir);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
  setenv ("AWS_CONFIG_FILE", conf_path, 1);
  static const char *const unset[] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
  };
  for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++)
    unsetenv (unset[i]);
  return 0;
}

static void
check_value (const char *v)
{
  if (v == NULL)
    return;
  size_t n = strlen (v);
  if (n > 0 && (isspace ((unsigned char) v[0]) ||
                isspace ((unsigned char) v[n - 1])))
    abort ();
  if (strchr (v, '\n') != NULL)
    abort ();
}

static bool
same (const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}

/* "key = value", or for an empty value an indented "key =" (a top-level
 * "key =" would open a sub-section instead).  Written right after the
 * section header, where no sub-section is open.
 */
static void
put_kv (FILE *f, const char *key, const char *val)
{
  if (val == NULL)
    return;
  if (*val)
    fprintf (f, "%s = %s\n", key, val);
  else
    fprintf (f, "  %s =\n", key);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const profiles[] = { "default", "dev", "a b" };
  if (size == 0)
    return 0;
  const char *profile = profiles[data[0] % 3];
  data++, size--;
  const uint8_t *nul = memchr (data, '\0', size);
  size_t cred_len = nul ? (size_t) (nul - data) : size;
  write_file (cred_path, data, cred_len);
  if (nul)
    write_file (conf_path, nul + 1, size - cred_len - 1);
  else
    unlink (conf_path);         /* a missing file is fine too */
  if (strcmp (profile, "default") == 0)
    unsetenv ("AWS_PROFILE");
  else
    setenv ("AWS_PROFILE", profile, 1);

  struct aws_config cfg, cfg2;
  struct error err = { 0 };
  if (aws_config_load (&cfg, &err) != 0) {
    if (err.msg[0] == '\0' || cfg.access_key_id != NULL)
      abort ();                 /* a refusal says why and leaves nothing */
    return 0;
  }
  if (cfg.access_key_id == NULL || cfg.secret_access_key == NULL ||
      cfg.region == NULL || cfg.credentials_from == NULL ||
      strcmp (cfg.profile, profile) != 0)
    abort ();
  if (strcmp (cfg.credentials_from, cred_path) != 0 &&
      strcmp (cfg.credentials_from, conf_path) != 0)
    abort ();
  if (cfg.region[0] == '\0' || strpbrk (cfg.region, " \t/:") != NULL)
    abort ();
  if (cfg.endpoint_url && strncmp (cfg.endpoint_url, "http://", 7) != 0 &&
      strncmp (cfg.endpoint_url, "https://", 8) != 0)
    abort ();
  const char *vals[] = { cfg.access_key_id, cfg.secret_access_key,
                         cfg.session_token, cfg.region, cfg.endpoint_url };
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
    check_value (vals[i]);

  /* Written back canonically, it reads the same. */
  FILE *f = fopen (cred_path, "w");
  if (f == NULL)
    abort ();
  fprintf (f, "[%s]\n", profile);
  put_kv (f, "aws_access_key_id", cfg.access_key_id);
  put_kv (f, "aws_secret_access_key", cfg.secret_access_key);
  put_kv (f, "aws_session_token", cfg.session_token);
  if (fclose (f) != 0 || (f = fopen (conf_path, "w")) == NULL)
    abort ();
  if (strcmp (profile, "default") == 0)
    fprintf (f, "[default]\n");
  else
    fprintf (f, "[profile %s]\n", profile);
  put_kv (f, "region", cfg.region);
  put_kv (f, "endpoint_url", cfg.endpoint_url);
  if (fclose (f) != 0)
    abort ();
  if (aws_config_load (&cfg2, &err) != 0)
    abort ();
  if (!same (cfg.access_key_id, cfg2.access_key_id) ||
      !same (cfg.secret_access_key, cfg2.secret_access_key) ||
      !same (cfg.session_token, cfg2.session_token) ||
      !same (cfg.region, cfg2.region) ||
      !same (cfg.endpoint_url, cfg2.endpoint_url) ||
      !same (cfg2.credentials_from, cred_path))
    abort ();
  aws_config_free (&cfg2);
  aws_config_free (&cfg);
  return 0;
}
