/* mksnap.c - write a snapshot of a raw image file into an object store
 * with the catalog API, for the integration tests (until "repvol
 * snapshot create" exists, and to build exact store contents after).
 *
 *   mksnap URL NAME IMAGE [--parent P] [--volume V] [--chunk-size N]
 *          [--created UNIX]
 *   mksnap --begin URL NAME        leave inprogress/NAME behind
 *   mksnap --end URL NAME          remove it
 *
 * Prints "INDEX HEX" for every chunk the manifest lists, then "new N"
 * (chunks it uploaded) on the last line.  All-zero chunks are not stored.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "core/util.h"
#include "snapshot/catalog.h"

static int
usage (void)
{
  fprintf (stderr, "usage: mksnap URL NAME IMAGE [--parent P] [--volume V] "
           "[--chunk-size N] [--created UNIX]\n"
           "       mksnap --begin|--end URL NAME\n");
  return 2;
}

int
main (int argc, char **argv)
{
  struct error err = { 0 };
  log_init ("mksnap");

  if (argc == 4 && (strcmp (argv[1], "--begin") == 0 ||
                    strcmp (argv[1], "--end") == 0)) {
    struct objstore *os = objstore_open (argv[2], &err);
    if (os == NULL) {
      log_error ("%s", error_msg (&err));
      return 1;
    }
    int e = argv[1][2] == 'b'
      ? snapshot_begin_upload (os, argv[3], &err)
      : snapshot_end_upload (os, argv[3], &err);
    objstore_close (os);
    if (e)
      log_error ("%s", error_msg (&err));
    return e ? 1 : 0;
  }
  if (argc < 4)
    return usage ();

  const char *url = argv[1], *name = argv[2], *image = argv[3];
  const char *parent = "", *volume = "vol";
  uint64_t csize = 65536, created = time (NULL);
  for (int i = 4; i < argc; i += 2) {
    if (i + 1 >= argc)
      return usage ();
    if (strcmp (argv[i], "--parent") == 0)
      parent = argv[i + 1];
    else if (strcmp (argv[i], "--volume") == 0)
      volume = argv[i + 1];
    else if (strcmp (argv[i], "--chunk-size") == 0) {
      if (parse_size (argv[i + 1], &csize) == -1)
        return usage ();
    }
    else if (strcmp (argv[i], "--created") == 0) {
      if (parse_uint (argv[i + 1], 0, INT32_MAX, &created) == -1)
        return usage ();
    }
    else
      return usage ();
  }

  FILE *fp = fopen (image, "rb");
  struct stat st;
  if (fp == NULL || fstat (fileno (fp), &st) == -1) {
    log_error ("%s: %s", image, strerror (errno));
    return 1;
  }
  struct manifest m = { 0 };
  int e = manifest_init (&m, st.st_size, csize);
  if (e < 0) {
    log_error ("%s: cannot make a manifest: %s", image, strerror (-e));
    return 1;
  }
  snprintf (m.name, sizeof m.name, "%s", name);
  snprintf (m.parent, sizeof m.parent, "%s", parent);
  snprintf (m.volume, sizeof m.volume, "%s", volume);
  m.created = created;

  struct objstore *os = objstore_open (url, &err);
  if (os == NULL) {
    log_error ("%s", error_msg (&err));
    return 1;
  }
  if (snapshot_begin_upload (os, name, &err) != 0) {
    log_error ("%s", error_msg (&err));
    return 1;
  }

  char *buf = malloc (csize);
  uint64_t fresh = 0;
  int ret = 0;
  for (uint64_t i = 0; i < m.nchunks && ret == 0; i++) {
    size_t n = fread (buf, 1, csize, fp);
    /* The last chunk is short; the manifest's chunks are full size, the
     * tail past the volume reading as zeroes.
     */
    memset (buf + n, 0, csize - n);
    if (mem_is_zero (buf, csize))
      continue;
    char key[OBJ_KEY_MAX], hex[CHUNK_HEX_LEN + 1];
    chunk_hash (buf, csize, m.hashes[i]);
    m.present[i] = true;
    m.data_bytes += MIN (csize, m.volume_size - i * csize);
    chunk_key (m.hashes[i], key);
    hash_to_hex (m.hashes[i], hex);
    printf ("%" PRIu64 " %s\n", i, hex);
    /* Content addressed: a chunk already stored is not sent again. */
    e = objstore_head (os, key, NULL, &err);
    if (e == -ENOENT) {
      void *obj;
      size_t olen;
      if (chunk_encode (buf, csize, 3, &obj, &olen) < 0) {
        log_error ("out of memory");
        ret = 1;
        break;
      }
      e = objstore_put (os, key, obj, olen, &err);
      free (obj);
      m.uploaded_bytes += olen;
      fresh++;
    }
    if (e) {
      log_error ("%s", error_msg (&err));
      ret = 1;
    }
  }
  m.completed = MAX ((time_t) time (NULL), m.created);
  if (ret == 0 && manifest_write (os, &m, &err) != 0) {
    log_error ("%s", error_msg (&err));
    ret = 1;
  }
  if (snapshot_end_upload (os, name, &err) != 0) {
    log_error ("%s", error_msg (&err));
    ret = 1;
  }
  printf ("new %" PRIu64 "\n", fresh);
  free (buf);
  fclose (fp);
  manifest_free (&m);
  objstore_close (os);
  return ret;
}
