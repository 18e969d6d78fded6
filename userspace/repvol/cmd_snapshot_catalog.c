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
    CLI_BYTES_OPTION,
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

/* A listed snapshot: its summary (JSON) or its row, and its parent, to
 * say at the end whether the parent still exists (deleting a snapshot
 * does not rewrite the manifests that name it).
 */
struct list_row {
  char name[SNAP_NAME_MAX], parent[SNAP_NAME_MAX];
  json_object *summary;         /* --json */
  char text[400];               /* the row without its PARENT column */
  char text_end[80];            /* DATA and UPLOADED */
};

struct list_ctx {
  bool json;
  struct list_row *rows;
  size_t n, cap;
};

static int
list_one (void *opaque, const struct manifest *m)
{
  struct list_ctx *lc = opaque;

  if (lc->n == lc->cap) {
    size_t cap = lc->cap ? lc->cap * 2 : 16;
    struct list_row *r = realloc (lc->rows, cap * sizeof *r);
    if (!r)
      return -ENOMEM;
    lc->rows = r;
    lc->cap = cap;
  }
  struct list_row *row = &lc->rows[lc->n++];
  memset (row, 0, sizeof *row);
  snprintf (row->name, sizeof row->name, "%s", m->name);
  snprintf (row->parent, sizeof row->parent, "%s", m->parent);
  if (lc->json) {
    row->summary = manifest_json (m, MANIFEST_SUMMARY);
    return 0;
  }
  char created[32], size[32], data[32], up[32];
  struct tm tm;
  if (localtime_r (&m->created, &tm) == NULL ||
      strftime (created, sizeof created, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    snprintf (created, sizeof created, "-");
  snprintf (row->text, sizeof row->text, "%-28s %-19s %-16s %10s", m->name,
            created, m->volume, size_text (m->volume_size, size,
                                           sizeof size));
  snprintf (row->text_end, sizeof row->text_end, "%10s %10s",
            size_text (m->data_bytes, data, sizeof data),
            size_text (m->uploaded_bytes, up, sizeof up));
  return 0;
}

static bool
listed (const struct list_ctx *lc, const char *name)
{
  for (size_t i = 0; i < lc->n; i++)
    if (strcmp (lc->rows[i].name, name) == 0)
      return true;
  return false;
}

/* DATA: volume bytes the snapshot holds; UPLOADED: what it added to
 * the store (new chunks, compressed).  A parent that was deleted since
 * is shown as such: the snapshot itself is complete without it.
 */
static void
print_list (const struct list_ctx *lc)
{
  json_object *arr = lc->json ? json_object_new_array () : NULL;

  if (!lc->json)
    printf ("%-28s %-19s %-16s %10s %-28s %10s %10s\n", "NAME", "CREATED",
            "VOLUME", "SIZE", "PARENT", "DATA", "UPLOADED");
  for (size_t i = 0; i < lc->n; i++) {
    const struct list_row *r = &lc->rows[i];
    bool gone = r->parent[0] && !listed (lc, r->parent);
    if (lc->json) {
      json_object_object_add (r->summary, "parent_deleted",
                              json_object_new_boolean (gone));
      json_object_array_add (arr, r->summary);
      continue;
    }
    char parent[SNAP_NAME_MAX + 16];
    snprintf (parent, sizeof parent, "%s%s", r->parent[0] ? r->parent : "-",
              gone ? " (deleted)" : "");
    printf ("%s %-28s %s\n", r->text, parent, r->text_end);
  }
  if (lc->json)
    print_json (arr, JSON_C_TO_STRING_PRETTY);
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
  int r = snapshot_list (os, list_one, &lc, &err);
  if (r == -ENOMEM)
    log_error ("out of memory");
  else if (r != 0)
    log_error ("%s", error_msg (&err));
  else
    print_list (&lc);
  if (r != 0) {
    ret = EXIT_FAILURE;
    for (size_t i = 0; i < lc.n; i++)
      json_object_put (lc.rows[i].summary);
  }
  free (lc.rows);
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
  size_text (st.bytes_freed, freed, sizeof freed);
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
