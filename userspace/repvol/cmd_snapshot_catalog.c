/* cmd_snapshot_catalog.c - repvol snapshot list|delete: what a store
 * holds, and removing a snapshot (with its chunks no other uses).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "core/util.h"
#include "repvol.h"
#include "snapshot/catalog.h"

/* Options and positionals shared by list and delete: exactly npos
 * positionals, named by pos for the error.  Returns -1 to go on, or the
 * exit code to return now (after --help: 0; a usage error, printed).
 */
static int
parse_args (int argc, char **argv, int npos, const char *const *pos,
            bool *json)
{
  static const struct option longopts[] = {
    { "json", no_argument, NULL, 'j' },
    CLI_COMMON_OPTIONS,
    { "help", no_argument, NULL, 'h' },
    { NULL },
  };
  int c;
  while ((c = cli_getopt (argc, argv, "snapshot", longopts)) != -1) {
    if (OPT_DONE (c))
      return OPT_EXIT (c);
    if (c == 'j')
      *json = true;
  }
  if (argc - optind < npos)
    return usage_error ("snapshot", "%s: missing %s", argv[0],
                        pos[argc - optind]);
  if (argc - optind > npos)
    return usage_error ("snapshot", "%s: unexpected argument '%s'", argv[0],
                        argv[optind + npos]);
  return -1;
}

static struct objstore *
open_store (const char *url)
{
  struct error err = { 0 };
  struct objstore *os = objstore_open (url, &err);
  if (os == NULL)
    log_error ("%s", error_msg (&err));
  return os;
}

struct list_ctx {
  bool json;
  json_object *arr;
  int n;
};

/* DATA: volume bytes the snapshot holds; UPLOADED: what it added to
 * the store (new chunks, compressed).  Printed with the first row, so
 * that a store that cannot be listed gets an error and no table.
 */
static void
print_list_header (void)
{
  printf ("%-28s %-19s %-16s %10s %-28s %10s %10s\n", "NAME", "CREATED",
          "VOLUME", "SIZE", "PARENT", "DATA", "UPLOADED");
}

static int
list_one (void *opaque, const struct manifest *m)
{
  struct list_ctx *lc = opaque;
  if (!lc->json && lc->n == 0)
    print_list_header ();
  lc->n++;
  if (lc->json) {
    json_object_array_add (lc->arr, manifest_json (m, MANIFEST_SUMMARY));
    return 0;
  }

  char created[32], size[32], data[32], up[32];
  struct tm tm;
  if (localtime_r (&m->created, &tm) == NULL ||
      strftime (created, sizeof created, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    snprintf (created, sizeof created, "-");
  printf ("%-28s %-19s %-16s %10s %-28s %10s %10s\n", m->name, created,
          m->volume, format_size (m->volume_size, size, sizeof size),
          m->parent[0] ? m->parent : "-",
          format_size (m->data_bytes, data, sizeof data),
          format_size (m->uploaded_bytes, up, sizeof up));
  return 0;
}

int
cmd_snapshot_list (int argc, char **argv)
{
  bool json = false;
  static const char *const pos[] = { "URL" };
  int ret = parse_args (argc, argv, 1, pos, &json);
  if (ret >= 0)
    return ret;
  ret = EXIT_SUCCESS;
  struct objstore *os = open_store (argv[optind]);
  if (os == NULL)
    return EXIT_FAILURE;

  struct list_ctx lc = { .json = json };
  struct error err = { 0 };
  if (json)
    lc.arr = json_object_new_array ();
  if (snapshot_list (os, list_one, &lc, &err) != 0) {
    log_error ("%s", error_msg (&err));
    ret = EXIT_FAILURE;
  }
  else if (!json && lc.n == 0)
    print_list_header ();
  else if (json) {
    print_json (lc.arr, JSON_C_TO_STRING_PRETTY);
    lc.arr = NULL;
  }
  json_object_put (lc.arr);
  objstore_close (os);
  return ret;
}

int
cmd_snapshot_delete (int argc, char **argv)
{
  bool json = false;
  static const char *const pos[] = { "URL", "NAME" };
  int ret = parse_args (argc, argv, 2, pos, &json);
  if (ret >= 0)
    return ret;
  const char *url = argv[optind], *name = argv[optind + 1];
  if (!snapshot_name_valid (name))
    return usage_error ("snapshot", "delete: '%s' is not a valid snapshot "
                        "name", name);
  struct objstore *os = open_store (url);
  if (os == NULL)
    return EXIT_FAILURE;

  struct delete_stats st;
  struct error err = { 0 };
  int e = snapshot_delete (os, name, &st, &err);
  objstore_close (os);
  if (e) {
    log_error ("%s", error_msg (&err));
    return EXIT_FAILURE;
  }

  char freed[32];
  format_size (st.bytes_freed, freed, sizeof freed);
  if (json) {
    json_object *o = json_object_new_object ();
    json_object_object_add (o, "name", json_object_new_string (name));
    json_object_object_add (o, "deleted", json_object_new_boolean (true));
    json_object_object_add (o, "chunks_deleted",
                            json_object_new_uint64 (st.chunks_deleted));
    json_object_object_add (o, "chunks_kept",
                            json_object_new_uint64 (st.chunks_kept));
    json_object_object_add (o, "bytes_freed",
                            json_object_new_uint64 (st.bytes_freed));
    json_object_object_add (o, "collection_skipped",
                            json_object_new_boolean (st.collection_skipped));
    json_object_object_add (o, "skip_reason", st.collection_skipped
                            ? json_object_new_string (st.skip_reason) : NULL);
    print_json (o, JSON_C_TO_STRING_PLAIN);
  }
  else if (st.collection_skipped)
    printf ("deleted snapshot '%s'; chunks not collected: %s (a later delete "
            "collects them)\n", name, st.skip_reason);
  else
    printf ("deleted snapshot '%s': %" PRIu64 " chunks deleted (%s freed), "
            "%" PRIu64 " kept (used by other snapshots)\n", name,
            st.chunks_deleted, freed, st.chunks_kept);
  return EXIT_SUCCESS;
}
