/* cmd_verify.c - repvol verify: ask the running attach of a volume to
 * compare its replicas (checksums computed on the servers), and with
 * --repair to copy differing regions from the majority.
 *
 * The attach answers in lines (attach_control.c, engine/verify.c):
 * "region START+LEN differs: NAME=CRC[*] ..." for each differing region
 * (* marks the replicas that differ from the source), "region
 * START+LEN repaired from NAME", and a last "ok: ..." or "error: ...".
 * Text mode prints them as they come; --json gathers them into one
 * document.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "attach/control.h"
#include "repvol.h"
#include "core/util.h"

struct verify_doc {
  json_object *regions;         /* [{offset, length, replicas, repaired_from}] */
  char last[512];               /* the last line: ok or error */
};

/* "NAME=CRC" or "NAME=CRC*" (a name may hold ':' but not '='). */
static json_object *
replica_crc (char *tok)
{
  char *eq = strrchr (tok, '=');
  size_t n;
  json_object *o;

  if (eq == NULL)
    return NULL;
  *eq++ = '\0';
  n = strlen (eq);
  o = json_object_new_object ();
  json_object_object_add (o, "replica", json_object_new_string (tok));
  json_object_object_add (o, "differs",
                          json_object_new_boolean (n && eq[n - 1] == '*'));
  if (n && eq[n - 1] == '*')
    eq[n - 1] = '\0';
  json_object_object_add (o, "crc32c", json_object_new_string (eq));
  return o;
}

static void
gather (void *opaque, const char *line)
{
  struct verify_doc *d = opaque;
  unsigned long long start;
  unsigned len;
  int off = 0;
  char from[256];

  snprintf (d->last, sizeof d->last, "%s", line);
  if (sscanf (line, "region %llu+%u differs:%n", &start, &len, &off) == 2 &&
      off > 0) {
    json_object *r = json_object_new_object (), *reps = json_object_new_array ();
    char *copy = strdup (line + off), *save = NULL;
    for (char *t = copy ? strtok_r (copy, " ", &save) : NULL; t;
         t = strtok_r (NULL, " ", &save)) {
      json_object *c = replica_crc (t);
      if (c)
        json_object_array_add (reps, c);
    }
    free (copy);
    json_object_object_add (r, "offset", json_object_new_uint64 (start));
    json_object_object_add (r, "length", json_object_new_uint64 (len));
    json_object_object_add (r, "replicas", reps);
    json_object_object_add (r, "repaired_from", NULL);
    json_object_array_add (d->regions, r);
  }
  else if (sscanf (line, "region %llu+%u repaired from %255s", &start, &len,
                   from) == 3) {
    size_t n = json_object_array_length (d->regions);
    for (size_t i = n; i-- > 0;) {
      json_object *r = json_object_array_get_idx (d->regions, i), *o;
      if (json_object_object_get_ex (r, "offset", &o) &&
          json_object_get_uint64 (o) == start) {
        json_object_object_add (r, "repaired_from",
                                json_object_new_string (from));
        break;
      }
    }
  }
}

/* {"volume", "repair", "agree", "regions_differing", "regions_repaired",
 *  "regions": [...], "result"}
 */
static int
verify_json (const struct reg_volume *v, bool repair)
{
  struct verify_doc d = { .regions = json_object_new_array () };
  int how = control_call_timeout (v->attachment.control, repair
                                  ? "verify repair" : "verify", gather, &d,
                                  -1);
  size_t n = json_object_array_length (d.regions), repaired = 0;

  if (how != CONTROL_OK && how != CONTROL_ERROR) {
    log_error ("%s: the attach's control channel %s", v->name,
               how == CONTROL_UNREACHABLE ? "cannot be reached"
               : "closed without an answer");
    json_object_put (d.regions);
    return EXIT_FAILURE;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *o;
    json_object_object_get_ex (json_object_array_get_idx (d.regions, i),
                               "repaired_from", &o);
    repaired += o != NULL;
  }
  const char *result = d.last;
  if (strncmp (result, "ok: ", 4) == 0)
    result += 4;
  else if (strncmp (result, "error: ", 7) == 0)
    result += 7;
  json_object *doc = json_object_new_object ();
  json_object_object_add (doc, "volume", json_object_new_string (v->name));
  json_object_object_add (doc, "repair", json_object_new_boolean (repair));
  json_object_object_add (doc, "agree",
                          json_object_new_boolean (how == CONTROL_OK));
  json_object_object_add (doc, "regions_differing",
                          json_object_new_uint64 (n));
  json_object_object_add (doc, "regions_repaired",
                          json_object_new_uint64 (repaired));
  json_object_object_add (doc, "regions", d.regions);
  json_object_object_add (doc, "result", json_object_new_string (result));
  print_json (doc, JSON_C_TO_STRING_PRETTY);
  if (how != CONTROL_OK)
    log_error ("%s: %s", v->name, result);
  return how == CONTROL_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}

int
cmd_verify (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "repair", no_argument, NULL, 'r' },
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  bool repair = false, json = false;
  int c;

  while ((c = cli_getopt (argc, argv, "verify", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'r')
      repair = true;
    if (c == 'j')
      json = true;
  }
  const char *vol;
  struct registry *reg;
  struct reg_volume v;
  int ret = verb_volume (argc, argv, "verify", &vol, &reg, &v);
  if (ret)
    return ret;
  ret = EXIT_FAILURE;
  if (!v.attachment.attached || !attachment_is_local (&v.attachment) ||
      !v.attachment.control[0]) {
    log_error ("volume '%s' is not attached on this host: verify runs in "
               "its attach (repvol attach %s ...)", vol, vol);
    goto out;
  }
  if (json)
    ret = verify_json (&v, repair);
  else      /* the attach's lines as they come, then a summary */
    ret = control_call (v.attachment.control, repair ? "verify repair"
                        : "verify") == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
 out:
  registry_close (reg);
  return ret;
}
