/* test_config.c - core/config.c: the site file's syntax (comments,
 * blanks, spaces around '=', every error naming its line), and
 * config_load's precedence: a variable already set beats the file, the
 * TLS pair is one setting, a missing default file is nothing and a
 * missing $REPVOL_CONFIG is an error.
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
#include <cmocka.h>

#include "core/config.h"
#include "core/util.h"

static int
parse (const char *text, struct error *err)
{
  return config_parse ("t.conf", text, strlen (text), err);
}

static void
test_syntax (void **state)
{
  struct error err = { 0 };

  assert_int_equal (parse ("# site defaults\n"
                           "\n"
                           "registry = /srv/registry\n"
                           "  tls-dir=/etc/repvol/tls  \r\n"
                           "\t# indented comment\n"
                           "zone =   az-b", &err), 0);
  assert_string_equal (config_get ("registry"), "/srv/registry");
  assert_string_equal (config_get ("tls-dir"), "/etc/repvol/tls");
  assert_string_equal (config_get ("zone"), "az-b");
  assert_null (config_get ("tls-psk"));
  assert_null (config_get ("no-such-key"));
  /* A value may hold '=' and '#'. */
  assert_int_equal (parse ("registry = etcd://h:1/p=#x\n", &err), 0);
  assert_string_equal (config_get ("registry"), "etcd://h:1/p=#x");
  assert_int_equal (parse ("", &err), 0);
  assert_null (config_get ("registry"));
}

static void
expect_error (const char *text, const char *what)
{
  struct error err = { 0 };

  assert_int_equal (parse (text, &err), -EINVAL);
  if (!strstr (error_msg (&err), what))
    fail_msg ("'%s' gave \"%s\", not \"%s\"", text, error_msg (&err), what);
  /* A file with an error sets nothing. */
  assert_null (config_get ("registry"));
}

static void
test_errors (void **state)
{
  expect_error ("registry = /r\n\nregistri = /x\n",
                "t.conf:3: unknown key \"registri\"");
  expect_error ("registry /r\n", "t.conf:1: expected \"key = value\"");
  expect_error ("# x\nregistry =   \n", "t.conf:2: registry has no value");
  expect_error ("registry = /a\nregistry = /b\n",
                "t.conf:2: registry given twice");
  expect_error ("tls-dir = /d\ntls-psk = /p\n",
                "tls-dir and tls-psk: give one");
  static const char nul[] = "registry = /a\nzone = a\0b\n";
  struct error err = { 0 };
  assert_int_equal (config_parse ("t.conf", nul, sizeof nul - 1, &err), -EINVAL);
  assert_non_null (strstr (error_msg (&err), "t.conf:2: a NUL byte"));

  char *longline = malloc (CONFIG_LINE_MAX + 32);
  memset (longline, 'x', CONFIG_LINE_MAX + 16);
  memcpy (longline, "registry = ", 11);
  longline[CONFIG_LINE_MAX + 16] = '\0';
  expect_error (longline, "t.conf:1: line longer than");
  free (longline);
}

static char conf[64];

static void
write_conf (const char *text)
{
  FILE *f = fopen (conf, "w");
  assert_non_null (f);
  fputs (text, f);
  fclose (f);
}

static void
test_load_precedence (void **state)
{
  struct error err = { 0 };

  snprintf (conf, sizeof conf, "/tmp/test_config.%d", (int) getpid ());
  write_conf ("registry = /from/file\nrun-dir = /run/file\n"
              "tls-dir = /tls/file\nzone = z1\n");
  setenv ("REPVOL_CONFIG", conf, 1);
  unsetenv ("REPVOL_REGISTRY");
  setenv ("REPVOL_RUN_DIR", "/run/env", 1);
  unsetenv ("REPVOL_TLS_DIR");
  setenv ("REPVOL_TLS_PSK", "/psk/env", 1);
  assert_int_equal (config_load (&err), 0);
  assert_string_equal (config_path (), conf);
  assert_string_equal (getenv ("REPVOL_REGISTRY"), "/from/file");
  assert_string_equal (getenv ("REPVOL_RUN_DIR"), "/run/env");  /* env wins */
  /* REPVOL_TLS_PSK is set: the file's tls-dir must not join it. */
  assert_null (getenv ("REPVOL_TLS_DIR"));
  assert_string_equal (config_get ("zone"), "z1");

  /* A $REPVOL_CONFIG that names no file is an error saying so. */
  unlink (conf);
  assert_int_equal (config_load (&err), -ENOENT);
  assert_non_null (strstr (error_msg (&err), "(from $REPVOL_CONFIG)"));
  assert_null (config_path ());

  /* A bad file: the line, and nothing applied. */
  write_conf ("zone = a\nbogus = 1\n");
  unsetenv ("REPVOL_REGISTRY");
  assert_int_equal (config_load (&err), -EINVAL);
  assert_non_null (strstr (error_msg (&err), ":2: unknown key \"bogus\""));
  assert_null (config_get ("zone"));
  unlink (conf);
  unsetenv ("REPVOL_CONFIG");
  unsetenv ("REPVOL_RUN_DIR");
  unsetenv ("REPVOL_TLS_PSK");
  config_reset ();
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_syntax),
    cmocka_unit_test (test_errors),
    cmocka_unit_test (test_load_precedence),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
