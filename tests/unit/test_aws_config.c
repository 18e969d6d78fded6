/* test_aws_config.c - where S3 credentials, region and endpoint come
 * from (aws_config.c): environment over files, profiles, file syntax.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "core/util.h"
#include "objstore/aws_config.h"

static char dir[] = "/tmp/test_aws_config.XXXXXX";
static char cred_path[256], conf_path[256];

static const char *const vars[] = {
  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
  "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONFIG_FILE",
};

static void
write_file (const char *path, const char *text)
{
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fputs (text, f);
  assert_int_equal (fclose (f), 0);
}

/* Every test starts from a clean environment pointing at two files in
 * the temp dir that do not exist yet.
 */
static int
setup (void **state)
{
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv (vars[i]);
  unlink (cred_path);
  unlink (conf_path);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
  setenv ("AWS_CONFIG_FILE", conf_path, 1);
  return 0;
}

static void
load_ok (struct aws_config *c)
{
  struct error err = { 0 };
  if (aws_config_load (c, &err) != 0)
    fail_msg ("aws_config_load failed: %s", error_msg (&err));
}

static void
load_fails (const char *want_substr, struct error *err)
{
  struct aws_config c;
  *err = (struct error) { 0 };
  assert_int_equal (aws_config_load (&c, err), -EINVAL);
  if (strstr (error_msg (err), want_substr) == NULL)
    fail_msg ("error \"%s\" does not contain \"%s\"", error_msg (err),
              want_substr);
  assert_null (c.access_key_id);        /* freed on failure */
}

static void
test_env_only (void **state)
{
  struct aws_config c;
  setenv ("AWS_ACCESS_KEY_ID", "AKENV", 1);
  setenv ("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
  load_ok (&c);
  assert_string_equal (c.access_key_id, "AKENV");
  assert_string_equal (c.secret_access_key, "SKENV");
  assert_null (c.session_token);
  assert_string_equal (c.region, "us-east-1");  /* the default */
  assert_null (c.endpoint_url);
  assert_string_equal (c.profile, "default");
  assert_string_equal (c.credentials_from, "environment");
  aws_config_free (&c);

  setenv ("AWS_SESSION_TOKEN", "TOK", 1);
  setenv ("AWS_DEFAULT_REGION", "eu-west-1", 1);
  setenv ("AWS_ENDPOINT_URL", "http://127.0.0.1:7480", 1);
  load_ok (&c);
  assert_string_equal (c.session_token, "TOK");
  assert_string_equal (c.region, "eu-west-1");
  assert_string_equal (c.endpoint_url, "http://127.0.0.1:7480");
  aws_config_free (&c);

  /* AWS_REGION over AWS_DEFAULT_REGION, the S3 endpoint over the
   * general one.
   */
  setenv ("AWS_REGION", "ap-south-1", 1);
  setenv ("AWS_ENDPOINT_URL_S3", "https://s3.example.net", 1);
  load_ok (&c);
  assert_string_equal (c.region, "ap-south-1");
  assert_string_equal (c.endpoint_url, "https://s3.example.net");
  aws_config_free (&c);

  /* Empty counts as unset. */
  setenv ("AWS_REGION", "", 1);
  setenv ("AWS_ENDPOINT_URL_S3", "", 1);
  load_ok (&c);
  assert_string_equal (c.region, "eu-west-1");
  assert_string_equal (c.endpoint_url, "http://127.0.0.1:7480");
  aws_config_free (&c);
}

static void
test_env_over_files (void **state)
{
  struct aws_config c;
  write_file (cred_path,
              "[default]\n"
              "aws_access_key_id = AKFILE\n"
              "aws_secret_access_key = SKFILE\n"
              "aws_session_token = TOKFILE\n");
  write_file (conf_path,
              "[default]\n"
              "region = eu-central-1\n"
              "endpoint_url = http://files.example:9000\n");
  load_ok (&c);
  assert_string_equal (c.access_key_id, "AKFILE");
  assert_string_equal (c.session_token, "TOKFILE");
  assert_string_equal (c.region, "eu-central-1");
  assert_string_equal (c.endpoint_url, "http://files.example:9000");
  assert_string_equal (c.credentials_from, cred_path);
  aws_config_free (&c);

  /* Environment credentials win, and as a set: the file's token is not
   * mixed into them.
   */
  setenv ("AWS_ACCESS_KEY_ID", "AKENV", 1);
  setenv ("AWS_SECRET_ACCESS_KEY", "SKENV", 1);
  setenv ("AWS_REGION", "us-west-2", 1);
  setenv ("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
  load_ok (&c);
  assert_string_equal (c.access_key_id, "AKENV");
  assert_string_equal (c.secret_access_key, "SKENV");
  assert_null (c.session_token);
  assert_string_equal (c.region, "us-west-2");
  assert_string_equal (c.endpoint_url, "http://127.0.0.1:1");
  aws_config_free (&c);

  /* Half a pair in the environment is a mistake worth naming. */
  unsetenv ("AWS_SECRET_ACCESS_KEY");
  struct error err = { 0 };
  load_fails ("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
              &err);
}

static void
test_profiles (void **state)
{
  struct aws_config c;
  write_file (cred_path,
              "[default]\n"
              "aws_access_key_id = AKDEF\n"
              "aws_secret_access_key = SKDEF\n"
              "[prod]\n"
              "aws_access_key_id = AKPROD\n"
              "aws_secret_access_key = SKPROD\n");
  write_file (conf_path,
              "[default]\n"
              "region = us-east-2\n"
              "[prod]\n"                /* not a config-file section name */
              "region = wrong-1\n"
              "[profile prod]\n"
              "region = eu-north-1\n"
              "s3 =\n"
              "  endpoint_url = http://s3only.example\n"
              "endpoint_url = http://general.example\n"
              "[profile cfgonly]\n"
              "aws_access_key_id = AKCFG\n"
              "aws_secret_access_key = SKCFG\n");
  load_ok (&c);
  assert_string_equal (c.access_key_id, "AKDEF");
  assert_string_equal (c.region, "us-east-2");
  assert_null (c.endpoint_url);
  aws_config_free (&c);

  setenv ("AWS_PROFILE", "prod", 1);
  load_ok (&c);
  assert_string_equal (c.profile, "prod");
  assert_string_equal (c.access_key_id, "AKPROD");
  assert_string_equal (c.secret_access_key, "SKPROD");
  assert_string_equal (c.region, "eu-north-1");
  /* The s3 sub-section's endpoint is for S3 and beats the general one. */
  assert_string_equal (c.endpoint_url, "http://s3only.example");
  aws_config_free (&c);

  /* Credentials may live in the config file too. */
  setenv ("AWS_PROFILE", "cfgonly", 1);
  load_ok (&c);
  assert_string_equal (c.access_key_id, "AKCFG");
  assert_string_equal (c.credentials_from, conf_path);
  assert_string_equal (c.region, "us-east-1");
  aws_config_free (&c);

  /* A profile nobody defined. */
  setenv ("AWS_PROFILE", "nosuch", 1);
  struct error err = { 0 };
  load_fails ("profile \"nosuch\"", &err);
  assert_non_null (strstr (error_msg (&err), "no such profile"));
}

static void
test_syntax (void **state)
{
  struct aws_config c;
  write_file (cred_path,
              "# a comment\n"
              "; another\n"
              "\n"
              "  [ default ]  \n"
              "\taws_access_key_id=AKTIGHT   \n"
              "aws_secret_access_key   =   SK/with+slash=   # trailing comment\n"
              "unknown_key = ignored\n"
              "no equals sign here\n"
              "[broken\n"
              "aws_access_key_id = NOTTHIS\n");
  write_file (conf_path,
              "[profile  default]\n"
              "region = sa-east-1 ; comment\n");
  load_ok (&c);
  assert_string_equal (c.access_key_id, "AKTIGHT");
  assert_string_equal (c.secret_access_key, "SK/with+slash=");
  assert_string_equal (c.region, "sa-east-1");
  aws_config_free (&c);

  /* Later lines win within a section. */
  write_file (cred_path,
              "[default]\n"
              "aws_access_key_id = OLD\n"
              "aws_secret_access_key = S\n"
              "aws_access_key_id = NEW\n");
  load_ok (&c);
  assert_string_equal (c.access_key_id, "NEW");
  aws_config_free (&c);

  /* A bad endpoint or region is refused at once. */
  setenv ("AWS_ENDPOINT_URL", "127.0.0.1:7480", 1);
  struct error err = { 0 };
  load_fails ("not an http:// or https:// URL", &err);
  unsetenv ("AWS_ENDPOINT_URL");
  setenv ("AWS_REGION", "us east", 1);
  load_fails ("not a region name", &err);
}

static void
test_missing (void **state)
{
  struct error err = { 0 };
  /* Neither file exists. */
  load_fails ("no AWS credentials", &err);
  assert_non_null (strstr (error_msg (&err), cred_path));
  assert_non_null (strstr (error_msg (&err), conf_path));
  assert_non_null (strstr (error_msg (&err), "not found"));

  /* A profile without credentials. */
  write_file (cred_path, "[default]\nregion = x\n");
  load_fails ("no aws_access_key_id", &err);

  /* Keys with nothing after '=' are none (found by fuzz_aws_config). */
  write_file (cred_path, "[default]\n  aws_access_key_id =\n"
              "aws_secret_access_key =  \n");
  load_fails ("no aws_access_key_id", &err);

  /* Default paths come from $HOME. */
  unsetenv ("AWS_SHARED_CREDENTIALS_FILE");
  unsetenv ("AWS_CONFIG_FILE");
  char *home = getenv ("HOME") ? strdup (getenv ("HOME")) : NULL;
  setenv ("HOME", dir, 1);
  load_fails ("/.aws/credentials", &err);
  char want[300];
  snprintf (want, sizeof want, "%s/.aws/config", dir);
  assert_non_null (strstr (error_msg (&err), want));

  /* "~/" in a path is the home directory. */
  char sub[300];
  snprintf (sub, sizeof sub, "%s/.aws", dir);
  mkdir (sub, 0700);
  snprintf (sub, sizeof sub, "%s/.aws/creds", dir);
  write_file (sub, "[default]\naws_access_key_id=A\naws_secret_access_key=B\n");
  setenv ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/creds", 1);
  struct aws_config c;
  load_ok (&c);
  assert_string_equal (c.access_key_id, "A");
  aws_config_free (&c);
  unlink (sub);
  snprintf (sub, sizeof sub, "%s/.aws", dir);
  rmdir (sub);
  if (home) {
    setenv ("HOME", home, 1);
    free (home);
  }

  /* A directory where a file should be reads as empty, not a crash. */
  setenv ("AWS_SHARED_CREDENTIALS_FILE", dir, 1);
  setenv ("AWS_ACCESS_KEY_ID", "A", 1);
  setenv ("AWS_SECRET_ACCESS_KEY", "B", 1);
  load_ok (&c);
  aws_config_free (&c);
}

int
main (void)
{
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (cred_path, sizeof cred_path, "%s/credentials", dir);
  snprintf (conf_path, sizeof conf_path, "%s/config", dir);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_env_only, setup),
    cmocka_unit_test_setup (test_env_over_files, setup),
    cmocka_unit_test_setup (test_profiles, setup),
    cmocka_unit_test_setup (test_syntax, setup),
    cmocka_unit_test_setup (test_missing, setup),
  };
  int r = cmocka_run_group_tests (tests, NULL, NULL);
  unlink (cred_path);
  unlink (conf_path);
  rmdir (dir);
  return r;
}
