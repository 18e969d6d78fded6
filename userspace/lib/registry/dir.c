/* dir.c - the embedded registry backend: a directory of small JSON files.
 *
 *   DIR/.lock          taken with flock(LOCK_EX) by every writer
 *   DIR/VOLNAME.json   one volume (format: see reg_volume_to_json)
 *   DIR/.VOLNAME.json.tmp   the next version, while it is being written
 *
 * Writers (create, update, remove) take the lock, read the current
 * file, write the new version to the temp file, fsync it, rename it over
 * the old one and fsync the directory, so a crash at any point leaves
 * either the old or the new version, never a mix.  Readers (get, list)
 * take no lock: rename() makes each file change atomically.
 *
 * The lock file is opened afresh for every operation.  flock() locks
 * belong to the open file description, so a descriptor kept open across
 * fork() would let parent and child "both hold" the lock; opening per
 * operation also lets a long-lived process (repvol attach) hold the
 * registry open without ever blocking anyone.
 *
 * Error reporting: ENOENT (no such volume), EEXIST (create of a taken
 * name) and an update callback's own abort code are returned quietly for
 * the caller to phrase.  Anything else (an unreadable or corrupt file, a
 * full disk, permissions) is logged here, naming the file, because only
 * this layer knows which file and why.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "core/util.h"
#include "core/fsutil.h"
#include "registry/registry.h"
#include "registry/backends.h"

#define REG_FORMAT        1
#define REG_FILE_MAX      (1 << 20)     /* a volume file is ~1-2 KiB */

struct dir_registry {
  struct registry r;
  char *path;
};

static struct dir_registry *
to_dir (struct registry *r)
{
  return r->priv;
}

/* ---- JSON codec ------------------------------------------------------ */

/* Checks shared by what we read and what we are asked to write, so a
 * caller's bug cannot put a file on disk that the next reader refuses.
 */
static int
reg_volume_check (const struct reg_volume *v, const char **why)
{
  if (!valid_name (v->name)) {
    *why = "invalid volume name";
    return -1;
  }
  size_t ul = strnlen (v->uuid, sizeof v->uuid);
  if (ul != 0 && ul != 36) {
    *why = "uuid is not 36 characters";
    return -1;
  }
  if (v->block_size < 512 || v->block_size > 65536 ||
      (v->block_size & (v->block_size - 1)) != 0) {
    *why = "block_size is not a power of two in [512, 65536]";
    return -1;
  }
  if (v->size == 0 || v->size % v->block_size != 0) {
    *why = "size is zero or not a multiple of block_size";
    return -1;
  }
  if (v->nreplicas < 1 || v->nreplicas > REG_MAX_REPLICAS) {
    *why = "number of replicas out of range";
    return -1;
  }
  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *rp = &v->replicas[i];
    if (rp->addr[0] == '\0' || strnlen (rp->addr, REG_ADDR_MAX) == REG_ADDR_MAX) {
      *why = "replica addr empty or too long";
      return -1;
    }
    if (rp->state != REG_IN_SYNC && rp->state != REG_OUT_OF_SYNC) {
      *why = "replica state unknown";
      return -1;
    }
  }
  if (v->attachment.attached &&
      (v->attachment.pid <= 0 || v->attachment.host[0] == '\0')) {
    *why = "attachment without host or pid";
    return -1;
  }
  return 0;
}

/* An attachment as an object, or JSON null when there is none. */
static json_object *
attachment_json (const struct reg_attachment *a)
{
  json_object *at;

  if (!a->attached)
    return NULL;
  at = json_object_new_object ();
  json_object_object_add (at, "host", json_object_new_string (a->host));
  json_object_object_add (at, "pid", json_object_new_int64 (a->pid));
  json_object_object_add (at, "frontend", json_object_new_string (a->frontend));
  json_object_object_add (at, "epoch", json_object_new_uint64 (a->epoch));
  json_object_object_add (at, "since", json_object_new_int64 (a->since));
  if (a->control[0])
    json_object_object_add (at, "control", json_object_new_string (a->control));
  return at;
}

struct json_object *
reg_volume_json (const struct reg_volume *v)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "format", json_object_new_int (REG_FORMAT));
  json_object_object_add (o, "name", json_object_new_string (v->name));
  json_object_object_add (o, "uuid", json_object_new_string (v->uuid));
  json_object_object_add (o, "size", json_object_new_uint64 (v->size));
  json_object_object_add (o, "block_size", json_object_new_int64 (v->block_size));
  json_object_object_add (o, "epoch", json_object_new_uint64 (v->epoch));
  json_object_object_add (o, "reserved", json_object_new_boolean (v->reserved));
  json_object_object_add (o, "allow_same_zone",
                          json_object_new_boolean (v->allow_same_zone));
  json_object_object_add (o, "created", json_object_new_int64 (v->created));

  json_object *reps = json_object_new_array ();
  for (int i = 0; i < v->nreplicas; i++) {
    const struct reg_replica *rp = &v->replicas[i];
    json_object *r = json_object_new_object ();
    json_object_object_add (r, "addr", json_object_new_string (rp->addr));
    json_object_object_add (r, "server", json_object_new_string (rp->server));
    json_object_object_add (r, "zone", json_object_new_string (rp->zone));
    json_object_object_add (r, "state",
                            json_object_new_string (reg_state_name (rp->state)));
    json_object_object_add (r, "out_of_sync_epoch",
                            json_object_new_uint64 (rp->out_of_sync_epoch));
    json_object_object_add (r, "out_of_sync_since",
                            json_object_new_int64 (rp->out_of_sync_since));
    if (rp->full_copy)
      json_object_object_add (r, "full_copy", json_object_new_boolean (true));
    if (rp->state == REG_OUT_OF_SYNC && rp->resync_total) {
      json_object *rs = json_object_new_object ();
      json_object_object_add (rs, "total", json_object_new_uint64 (rp->resync_total));
      json_object_object_add (rs, "done", json_object_new_uint64 (rp->resync_done));
      json_object_object_add (rs, "rate", json_object_new_uint64 (rp->resync_rate));
      json_object_object_add (r, "resync", rs);
    }
    json_object_array_add (reps, r);
  }
  json_object_object_add (o, "replicas", reps);

  json_object_object_add (o, "attachment", attachment_json (&v->attachment));
  json_object_object_add (o, "fenced", attachment_json (&v->fenced));
  json_object_object_add (o, "chunk_size", json_object_new_int64 (v->chunk_size));
  json_object *cbt = json_object_new_object ();
  json_object_object_add (cbt, "valid", json_object_new_boolean (v->cbt.valid));
  json_object_object_add (cbt, "base_url", json_object_new_string (v->cbt.base_url));
  json_object_object_add (cbt, "base_name", json_object_new_string (v->cbt.base_name));
  json_object_object_add (o, "cbt", cbt);
  if (v->restore.active) {
    json_object *rs = json_object_new_object ();
    json_object_object_add (rs, "url", json_object_new_string (v->restore.url));
    json_object_object_add (rs, "snapshot", json_object_new_string (v->restore.snapshot));
    json_object_object_add (rs, "chunks_total",
                            json_object_new_uint64 (v->restore.chunks_total));
    json_object_object_add (rs, "chunks_hydrated",
                            json_object_new_uint64 (v->restore.chunks_hydrated));
    json_object_object_add (rs, "state", json_object_new_string
                            (v->restore.error[0] ? "failed" : "hydrating"));
    if (v->restore.error[0])
      json_object_object_add (rs, "error", json_object_new_string (v->restore.error));
    json_object_object_add (o, "restore", rs);
  }

  return o;
}

char *
reg_volume_to_json (const struct reg_volume *v)
{
  json_object *o = reg_volume_json (v);
  const char *s = json_object_to_json_string_ext (o,
                    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                    JSON_C_TO_STRING_NOSLASHESCAPE);
  char *ret = NULL;
  if (asprintf (&ret, "%s\n", s) < 0)
    ret = NULL;
  json_object_put (o);
  return ret;
}

/* Field readers: each returns 0 or -1 with *why set; *field is set by
 * the caller so the message can name the key.
 */
static json_object *
member (json_object *o, const char *key, json_type type, bool required,
        const char **why)
{
  json_object *m;
  if (!json_object_object_get_ex (o, key, &m) || m == NULL) {
    if (required)
      *why = "missing";
    return NULL;
  }
  if (!json_object_is_type (m, type)) {
    *why = "has the wrong type";
    return NULL;
  }
  return m;
}

static int
get_u64 (json_object *o, const char *key, bool required, uint64_t *out,
         const char **why)
{
  *why = NULL;
  json_object *m = member (o, key, json_type_int, required, why);
  if (m == NULL) {
    if (*why)
      return -1;
    *out = 0;
    return 0;
  }
  /* json-c keeps integers as int64 or uint64; a negative one is refused,
   * a large positive one is read back exactly by get_uint64.
   */
  if (json_object_get_int64 (m) < 0) {
    *why = "is negative";
    return -1;
  }
  *out = json_object_get_uint64 (m);
  return 0;
}

static int
get_bool (json_object *o, const char *key, bool *out, const char **why)
{
  *why = NULL;
  json_object *m = member (o, key, json_type_boolean, false, why);
  if (m == NULL) {
    *out = false;
    return *why ? -1 : 0;
  }
  *out = json_object_get_boolean (m);
  return 0;
}

static int
get_str (json_object *o, const char *key, bool required, char *buf, size_t size,
         const char **why)
{
  *why = NULL;
  json_object *m = member (o, key, json_type_string, required, why);
  if (m == NULL) {
    buf[0] = '\0';
    return *why ? -1 : 0;
  }
  const char *s = json_object_get_string (m);
  size_t len = json_object_get_string_len (m);
  if (len >= size || strlen (s) != len) {   /* too long, or embedded NUL */
    *why = "is too long or contains NUL";
    return -1;
  }
  memcpy (buf, s, len + 1);
  return 0;
}

#define TRY(key, call)                          \
  do {                                          \
    *field = (key);                             \
    if ((call) == -1)                           \
      goto out;                                 \
  } while (0)

static int
attachment_from_json (json_object *o, const char *key, struct reg_attachment *a,
                      const char **why, const char **field)
{
  json_object *at;
  uint64_t u;
  int ret = -1;

  if (!json_object_object_get_ex (o, key, &at) || at == NULL)
    return 0;
  if (!json_object_is_type (at, json_type_object)) {
    *why = "is neither null nor an object";
    return -1;
  }
  a->attached = true;
  TRY ("host", get_str (at, "host", true, a->host, sizeof a->host, why));
  TRY ("pid", get_u64 (at, "pid", true, &u, why));
  if (u == 0 || u > INT_MAX) {
    *why = "out of range";
    goto out;
  }
  a->pid = u;
  TRY ("frontend", get_str (at, "frontend", false, a->frontend,
                            sizeof a->frontend, why));
  TRY ("epoch", get_u64 (at, "epoch", true, &a->epoch, why));
  TRY ("since", get_u64 (at, "since", false, &u, why));
  a->since = u;
  TRY ("control", get_str (at, "control", false, a->control,
                           sizeof a->control, why));
  ret = 0;
 out:
  return ret;
}

int
reg_volume_from_json (const char *text, size_t len, struct reg_volume *v,
                      const char **why, const char **field)
{
  json_object *o = NULL;
  uint64_t u;
  int ret = -1;

  memset (v, 0, sizeof *v);
  *field = "";
  *why = NULL;

  json_tokener *tok = json_tokener_new ();
  if (tok == NULL) {
    *why = "out of memory";
    return -1;
  }
  o = json_tokener_parse_ex (tok, text, (int) len);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  size_t end = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (o == NULL || jerr != json_tokener_success) {
    *why = jerr == json_tokener_continue ? "truncated JSON"
                                         : json_tokener_error_desc (jerr);
    goto out;
  }
  for (size_t i = end; i < len; i++)
    if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r') {
      *why = "trailing garbage after the JSON document";
      goto out;
    }
  if (!json_object_is_type (o, json_type_object)) {
    *why = "not a JSON object";
    goto out;
  }

  TRY ("format", get_u64 (o, "format", true, &u, why));
  if (u != REG_FORMAT) {
    *why = "is not 1 (written by a newer repvol?)";
    goto out;
  }
  TRY ("name", get_str (o, "name", true, v->name, sizeof v->name, why));
  TRY ("uuid", get_str (o, "uuid", false, v->uuid, sizeof v->uuid, why));
  TRY ("size", get_u64 (o, "size", true, &v->size, why));
  TRY ("block_size", get_u64 (o, "block_size", true, &u, why));
  if (u > UINT32_MAX) {
    *why = "out of range";
    goto out;
  }
  v->block_size = u;
  TRY ("epoch", get_u64 (o, "epoch", true, &v->epoch, why));
  TRY ("reserved", get_bool (o, "reserved", &v->reserved, why));
  TRY ("allow_same_zone", get_bool (o, "allow_same_zone", &v->allow_same_zone, why));
  TRY ("created", get_u64 (o, "created", false, &u, why));
  v->created = u;

  *field = "replicas";
  json_object *reps = member (o, "replicas", json_type_array, true, why);
  if (reps == NULL)
    goto out;
  size_t n = json_object_array_length (reps);
  if (n < 1 || n > REG_MAX_REPLICAS) {
    *why = "must hold 1 to 8 replicas";
    goto out;
  }
  v->nreplicas = n;
  for (size_t i = 0; i < n; i++) {
    struct reg_replica *rp = &v->replicas[i];
    json_object *r = json_object_array_get_idx (reps, i);
    char state[32];
    *field = "replicas";
    if (!json_object_is_type (r, json_type_object)) {
      *why = "element is not an object";
      goto out;
    }
    TRY ("replicas[].addr", get_str (r, "addr", true, rp->addr, sizeof rp->addr, why));
    TRY ("replicas[].server", get_str (r, "server", false, rp->server,
                                       sizeof rp->server, why));
    TRY ("replicas[].zone", get_str (r, "zone", false, rp->zone,
                                     sizeof rp->zone, why));
    TRY ("replicas[].state", get_str (r, "state", true, state, sizeof state, why));
    if (strcmp (state, reg_state_name (REG_IN_SYNC)) == 0)
      rp->state = REG_IN_SYNC;
    else if (strcmp (state, reg_state_name (REG_OUT_OF_SYNC)) == 0)
      rp->state = REG_OUT_OF_SYNC;
    else {
      *why = "is not \"in-sync\" or \"out-of-sync\"";
      goto out;
    }
    TRY ("replicas[].out_of_sync_epoch",
         get_u64 (r, "out_of_sync_epoch", false, &rp->out_of_sync_epoch, why));
    TRY ("replicas[].out_of_sync_since",
         get_u64 (r, "out_of_sync_since", false, &u, why));
    rp->out_of_sync_since = u;
    json_object *fc;
    if (json_object_object_get_ex (r, "full_copy", &fc) && fc != NULL)
      rp->full_copy = json_object_get_boolean (fc);
    json_object *rs;
    if (json_object_object_get_ex (r, "resync", &rs) && rs != NULL) {
      TRY ("replicas[].resync.total", get_u64 (rs, "total", true, &rp->resync_total, why));
      TRY ("replicas[].resync.done", get_u64 (rs, "done", true, &rp->resync_done, why));
      TRY ("replicas[].resync.rate", get_u64 (rs, "rate", false, &rp->resync_rate, why));
    }
  }

  /* "attachment": null (or absent) means not attached; "fenced" is
   * the attachment a takeover fenced, in the same form.
   */
  TRY ("attachment", attachment_from_json (o, "attachment", &v->attachment,
                                           why, field));
  TRY ("fenced", attachment_from_json (o, "fenced", &v->fenced, why, field));

  /* Snapshot state; absent in volumes made before snapshots existed. */
  TRY ("chunk_size", get_u64 (o, "chunk_size", false, &u, why));
  if (u == 0)
    u = REG_DEFAULT_CHUNK_SIZE;
  if (u < 65536 || u > (64u << 20) || (u & (u - 1))) {
    *why = "is not a power of two from 64K to 64M";
    goto out;
  }
  v->chunk_size = u;
  json_object *cbt = member (o, "cbt", json_type_object, false, why);
  if (*why)
    goto out;
  if (cbt) {
    TRY ("cbt.valid", get_bool (cbt, "valid", &v->cbt.valid, why));
    TRY ("cbt.base_url", get_str (cbt, "base_url", false, v->cbt.base_url,
                                  sizeof v->cbt.base_url, why));
    TRY ("cbt.base_name", get_str (cbt, "base_name", false, v->cbt.base_name,
                                   sizeof v->cbt.base_name, why));
  }
  json_object *rs = member (o, "restore", json_type_object, false, why);
  if (*why)
    goto out;
  if (rs) {
    v->restore.active = true;
    TRY ("restore.url", get_str (rs, "url", true, v->restore.url,
                                 sizeof v->restore.url, why));
    TRY ("restore.snapshot", get_str (rs, "snapshot", true, v->restore.snapshot,
                                      sizeof v->restore.snapshot, why));
    TRY ("restore.chunks_total", get_u64 (rs, "chunks_total", true,
                                          &v->restore.chunks_total, why));
    TRY ("restore.chunks_hydrated", get_u64 (rs, "chunks_hydrated", true,
                                             &v->restore.chunks_hydrated, why));
    TRY ("restore.error", get_str (rs, "error", false, v->restore.error,
                                   sizeof v->restore.error, why));
  }

  *field = "";
  if (reg_volume_check (v, why) == -1)
    goto out;
  ret = 0;

 out:
  if (o)
    json_object_put (o);
  return ret;
}

/* ---- files ----------------------------------------------------------- */

static int
vol_path (struct dir_registry *d, const char *name, const char *prefix,
          const char *suffix, char *buf, size_t size)
{
  /* Names are checked before they become paths: valid_name() admits no
   * '/' and no leading '.', so a name can never escape the directory or
   * collide with the lock and temp files.
   */
  if (!valid_name (name)) {
    errno = EINVAL;
    return -1;
  }
  int n = snprintf (buf, size, "%s/%s%s%s", d->path, prefix, name, suffix);
  if (n < 0 || (size_t) n >= size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

static int
fsync_dir (struct dir_registry *d)
{
  int fd = open (d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1 || fsync (fd) == -1) {
    int e = errno;
    log_error ("registry %s: fsync of the directory: %s", d->path, strerror (e));
    if (fd >= 0)
      close (fd);
    errno = e;
    return -1;
  }
  close (fd);
  return 0;
}

/* Take the registry's write lock.  With create_dir the registry
 * directory is made first (mode 0700: volume files name hosts and pids
 * and nothing else needs to read them).  Without it, a missing
 * directory means there is no volume, so ENOENT is returned quietly.
 */
static int
lock_registry (struct dir_registry *d, bool create_dir)
{
  char lockpath[PATH_MAX];

  if (create_dir && mkdir (d->path, 0700) == -1 && errno != EEXIST) {
    log_error ("registry %s: cannot create directory: %m", d->path);
    return -1;
  }
  if (snprintf (lockpath, sizeof lockpath, "%s/.lock", d->path)
      >= (int) sizeof lockpath) {
    log_error ("registry %s: path too long", d->path);
    errno = ENAMETOOLONG;
    return -1;
  }
  int fd = open (lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1) {
    int e = errno;
    if (e == ENOENT && !create_dir)
      return -1;
    log_error ("registry %s: cannot open the lock file: %s",
               lockpath, strerror (e));
    errno = e;
    return -1;
  }
  while (flock (fd, LOCK_EX) == -1) {
    if (errno != EINTR) {
      int e = errno;
      log_error ("registry %s: flock: %s", lockpath, strerror (e));
      close (fd);
      errno = e;
      return -1;
    }
  }
  return fd;
}

static void
unlock_registry (int fd)
{
  close (fd);                   /* releases the flock */
}

/* Read and validate NAME.json.  ENOENT is quiet; anything else is
 * logged naming the file and returned as EBADMSG (corrupt) or the
 * system errno.
 */
static int
read_volume (struct dir_registry *d, const char *name, struct reg_volume *v)
{
  char path[PATH_MAX];
  if (vol_path (d, name, "", ".json", path, sizeof path) == -1)
    return errno == EINVAL ? (errno = ENOENT, -1) : -1;

  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    int e = errno;
    if (e != ENOENT)
      log_error ("registry %s: %s", path, strerror (e));
    errno = e;
    return -1;
  }

  char *buf = malloc (REG_FILE_MAX + 1);
  size_t len = 0;
  ssize_t r;
  if (buf == NULL) {
    close (fd);
    errno = ENOMEM;
    return -1;
  }
  while (len <= REG_FILE_MAX &&
         (r = read (fd, buf + len, REG_FILE_MAX + 1 - len)) != 0) {
    if (r == -1) {
      if (errno == EINTR)
        continue;
      int e = errno;
      log_error ("registry %s: read: %s", path, strerror (e));
      free (buf);
      close (fd);
      errno = e;
      return -1;
    }
    len += r;
  }
  close (fd);
  if (len > REG_FILE_MAX) {
    log_error ("registry %s: corrupt: larger than %d bytes", path, REG_FILE_MAX);
    free (buf);
    errno = EBADMSG;
    return -1;
  }
  buf[len] = '\0';

  const char *why, *field;
  int ret = reg_volume_from_json (buf, len, v, &why, &field);
  free (buf);
  if (ret == -1) {
    if (field[0])
      log_error ("registry %s: corrupt: key \"%s\" %s", path, field, why);
    else
      log_error ("registry %s: corrupt: %s", path, why);
    errno = EBADMSG;
    return -1;
  }
  if (strcmp (v->name, name) != 0) {
    log_error ("registry %s: corrupt: holds volume \"%s\"", path, v->name);
    errno = EBADMSG;
    return -1;
  }
  return 0;
}

/* Write V as NAME.json: temp file, fsync, rename, fsync directory.
 * The caller holds the lock.
 */
static int
write_volume (struct dir_registry *d, const struct reg_volume *v)
{
  char path[PATH_MAX], tmp[PATH_MAX];
  const char *why;
  int e;

  if (reg_volume_check (v, &why) == -1) {
    log_error ("registry %s: refusing to write volume \"%.*s\": %s",
               d->path, REG_NAME_MAX, v->name, why);
    errno = EINVAL;
    return -1;
  }
  if (vol_path (d, v->name, "", ".json", path, sizeof path) == -1 ||
      vol_path (d, v->name, ".", ".json.tmp", tmp, sizeof tmp) == -1)
    return -1;

  char *text = reg_volume_to_json (v);
  if (text == NULL) {
    errno = ENOMEM;
    return -1;
  }

  e = -atomic_replace (AT_FDCWD, path, tmp, text, strlen (text), 0600);
  if (e) {
    log_error ("registry %s: cannot write: %s", path, strerror (e));
    goto err;
  }
  free (text);
  return 0;

 err:
  free (text);
  errno = e;
  return -1;
}

/* ---- operations ------------------------------------------------------ */

static int
dir_create (struct registry *r, const struct reg_volume *v)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  struct stat st;
  int ret = -1, e;

  if (vol_path (d, v->name, "", ".json", path, sizeof path) == -1)
    return -1;
  int lk = lock_registry (d, true);
  if (lk == -1)
    return -1;
  if (lstat (path, &st) == 0)
    e = EEXIST;
  else if (errno != ENOENT) {
    e = errno;
    log_error ("registry %s: %s", path, strerror (e));
  }
  else {
    ret = write_volume (d, v);
    e = errno;
  }
  unlock_registry (lk);
  errno = e;
  return ret;
}

static int
dir_get (struct registry *r, const char *name, struct reg_volume *v)
{
  return read_volume (to_dir (r), name, v);
}

static int
dir_update (struct registry *r, const char *name,
            int (*fn) (struct reg_volume *v, void *arg), void *arg)
{
  struct dir_registry *d = to_dir (r);
  struct reg_volume v;
  int ret = -1, e;

  int lk = lock_registry (d, false);
  if (lk == -1)
    return -1;
  if (read_volume (d, name, &v) == -1) {
    e = errno;
    goto out;
  }
  int fe = fn (&v, arg);
  if (fe != 0) {
    e = fe;
    goto out;
  }
  /* The name is the file name: a callback may not rename a volume. */
  snprintf (v.name, sizeof v.name, "%s", name);
  ret = write_volume (d, &v);
  e = errno;
 out:
  unlock_registry (lk);
  errno = ret == 0 ? 0 : e;
  return ret;
}

static int
dir_remove (struct registry *r, const char *name)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  int ret = -1, e = 0;

  if (vol_path (d, name, "", ".json", path, sizeof path) == -1)
    return errno == EINVAL ? (errno = ENOENT, -1) : -1;
  int lk = lock_registry (d, false);
  if (lk == -1)
    return -1;
  if (unlink (path) == -1) {
    e = errno;
    if (e != ENOENT)
      log_error ("registry %s: unlink: %s", path, strerror (e));
  }
  else {
    ret = fsync_dir (d);
    e = errno;
  }
  unlock_registry (lk);
  errno = e;
  return ret;
}

/* ---- blobs: NAME.KIND.blob beside NAME.json ---------------------------- */

static int
blob_path (struct dir_registry *d, const char *name, const char *kind,
           const char *tmp, char *buf, size_t size)
{
  char suffix[64];
  if (!valid_name (kind)) {
    errno = EINVAL;
    return -1;
  }
  snprintf (suffix, sizeof suffix, ".%s.blob%s", kind, tmp);
  return vol_path (d, name, tmp[0] ? "." : "", suffix, buf, size);
}

static int
dir_blob_put (struct registry *r, const char *name, const char *kind,
              const void *data, size_t len)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX], tmp[PATH_MAX];
  int e;

  if (blob_path (d, name, kind, "", path, sizeof path) == -1 ||
      blob_path (d, name, kind, ".tmp", tmp, sizeof tmp) == -1)
    return -1;
  /* No registry lock: one attach owns a volume's blobs, and rename
   * makes each put atomic for readers.
   */
  e = -atomic_replace (AT_FDCWD, path, tmp, data, len, 0600);
  if (e) {
    errno = e;
    return -1;
  }
  return 0;
}

static int
dir_blob_get (struct registry *r, const char *name, const char *kind,
              void **data, size_t *len)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];
  struct stat st;

  if (blob_path (d, name, kind, "", path, sizeof path) == -1)
    return -1;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return -1;
  if (fstat (fd, &st) == -1) {
    close (fd);
    return -1;
  }
  void *buf = malloc (st.st_size ? st.st_size : 1);
  ssize_t n = buf ? pread (fd, buf, st.st_size, 0) : -1;
  int e = errno;
  close (fd);
  if (n != st.st_size) {
    free (buf);
    errno = n == -1 ? e : EIO;
    return -1;
  }
  *data = buf;
  *len = st.st_size;
  return 0;
}

static int
dir_blob_remove (struct registry *r, const char *name, const char *kind)
{
  struct dir_registry *d = to_dir (r);
  char path[PATH_MAX];

  if (blob_path (d, name, kind, "", path, sizeof path) == -1)
    return -1;
  if (unlink (path) == -1 && errno != ENOENT)
    return -1;
  return 0;
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
dir_list (struct registry *r, char ***names_out, int *n_out)
{
  struct dir_registry *d = to_dir (r);
  char **names = NULL;
  int n = 0, cap = 0;

  *names_out = NULL;
  *n_out = 0;
  DIR *dp = opendir (d->path);
  if (dp == NULL) {
    if (errno == ENOENT)        /* no registry yet: no volumes */
      return 0;
    int e = errno;
    log_error ("registry %s: %s", d->path, strerror (e));
    errno = e;
    return -1;
  }
  struct dirent *de;
  while ((de = readdir (dp)) != NULL) {
    size_t len = strlen (de->d_name);
    if (len <= 5 || strcmp (de->d_name + len - 5, ".json") != 0)
      continue;
    char stem[REG_NAME_MAX + 1];
    if (len - 5 >= sizeof stem)
      continue;
    memcpy (stem, de->d_name, len - 5);
    stem[len - 5] = '\0';
    if (!valid_name (stem))     /* skips .lock, temp files, strays */
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc (names, cap * sizeof *names);
      if (nn == NULL)
        goto nomem;
      names = nn;
    }
    if ((names[n] = strdup (stem)) == NULL)
      goto nomem;
    n++;
  }
  closedir (dp);
  if (n > 0)
    qsort (names, n, sizeof *names, cmp_names);
  *names_out = names;
  *n_out = n;
  return 0;

 nomem:
  closedir (dp);
  registry_free_names (names, n);
  errno = ENOMEM;
  return -1;
}

static void
dir_close (struct registry *r)
{
  struct dir_registry *d = to_dir (r);
  free (d->path);
  free (d);
}

static const struct registry_ops dir_ops = {
  .name = "dir",
  .create = dir_create,
  .get = dir_get,
  .update = dir_update,
  .remove = dir_remove,
  .list = dir_list,
  .blob_put = dir_blob_put,
  .blob_get = dir_blob_get,
  .blob_remove = dir_blob_remove,
  .close = dir_close,
};

struct registry *
registry_dir_open (const char *path)
{
  struct stat st;

  /* A path that exists must be a directory; one that does not yet is
   * made by the first create.
   */
  if (stat (path, &st) == 0 && !S_ISDIR (st.st_mode)) {
    log_error ("registry %s: not a directory", path);
    errno = ENOTDIR;
    return NULL;
  }
  struct dir_registry *d = calloc (1, sizeof *d);
  if (d == NULL || (d->path = strdup (path)) == NULL) {
    free (d);
    log_error ("registry %s: out of memory", path);
    errno = ENOMEM;
    return NULL;
  }
  /* Strip trailing slashes so messages read "DIR/vol.json". */
  size_t len = strlen (d->path);
  while (len > 1 && d->path[len - 1] == '/')
    d->path[--len] = '\0';
  d->r.ops = &dir_ops;
  d->r.priv = d;
  return &d->r;
}
