/* catalog.h - what a snapshot is in object storage: content-addressed
 * chunks and one manifest per snapshot.
 *
 * Layout under the store's root (see man/repvol-snapshot.5):
 *
 *   chunks/HH/HASH            one chunk: a zstd frame of the chunk's bytes;
 *                             HASH is the hex SHA-256 of the uncompressed
 *                             bytes, HH its first two digits.  Identical
 *                             chunks are stored once, by any snapshot.
 *   snapshots/NAME.json       the manifest.  Written last: a snapshot
 *                             exists (is listed, restorable) only once its
 *                             manifest does.
 *   inprogress/NAME           written when an upload starts, removed when
 *                             it ends; while one exists, delete does not
 *                             collect unreferenced chunks (the upload may
 *                             be about to reference them).
 *   collecting/NAME           written by a delete of NAME while it
 *                             collects unreferenced chunks; an upload
 *                             starting meanwhile waits for it to go.
 *
 * A manifest lists, for every chunk index of the volume that holds data,
 * the hash of its content: it describes the whole volume, so any one
 * manifest restores alone, and deleting a parent never breaks a child.
 * Chunk indexes not listed read as zeroes.
 *
 * The code: manifest.c (the manifest and its JSON), chunk.c (chunk
 * names, hashes and the zstd codec), gc.c (listing, upload markers,
 * deletion and collection).  Errors follow core/util.h: 0 or a negative
 * errno, the reason in the caller's struct error.
 */
#ifndef REPVOL_CATALOG_H
#define REPVOL_CATALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>

#include "objstore/objstore.h"

#define SNAP_NAME_MAX 128
#define CHUNK_HASH_LEN 32                       /* SHA-256 */
#define CHUNK_HEX_LEN (2 * CHUNK_HASH_LEN)
/* A manifest holds its hashes in memory: at most 16 Mi chunks (1 TiB in
 * 64 KiB chunks, 64 TiB in 4 MiB chunks).
 */
#define MANIFEST_MAX_CHUNKS (1 << 24)

struct json_object;

struct manifest {
  char name[SNAP_NAME_MAX];
  char parent[SNAP_NAME_MAX];   /* "" for a full snapshot */
  char volume[64];              /* the source volume's name */
  char volume_uuid[37];
  uint64_t volume_size;         /* bytes */
  uint32_t chunk_size;          /* bytes, a power of two >= 64 KiB */
  time_t created;               /* the snapshot's point in time */
  time_t completed;             /* when the manifest was written */
  uint64_t nchunks;             /* ceil (volume_size / chunk_size) */
  /* hashes[i] is chunk i's hash when present[i]; absent chunks are
   * zeroes.  Both arrays have nchunks entries.
   */
  uint8_t (*hashes)[CHUNK_HASH_LEN];
  bool *present;
  /* Totals, kept in the manifest for list: bytes of the volume held in
   * chunks, and bytes this snapshot uploaded (new chunks, compressed).
   */
  uint64_t data_bytes;
  uint64_t uploaded_bytes;
};

/* ---- manifest.c ------------------------------------------------------- */

/* A valid snapshot name: 1-100 of [A-Za-z0-9._-], not starting with '.'. */
bool snapshot_name_valid (const char *name);
/* The same as 0, or -EINVAL with err saying so. */
int snapshot_name_check (const char *name, struct error *err);

/* The object key of a manifest: "snapshots/NAME.json". */
void manifest_key (const char *name, char key[OBJ_KEY_MAX]);

/* Allocate the arrays for nchunks = ceil (volume_size / chunk_size),
 * all absent.  0, -EINVAL (a zero size), -EFBIG (more than
 * MANIFEST_MAX_CHUNKS) or -ENOMEM.
 */
int manifest_init (struct manifest *m, uint64_t volume_size,
                   uint32_t chunk_size);
void manifest_free (struct manifest *m);

/* The two JSON forms of a manifest, built by one function:
 *   MANIFEST_STORED   the document of man/repvol-snapshot.5 (format 1),
 *                     what manifest_write stores and manifest_from_json
 *                     reads;
 *   MANIFEST_SUMMARY  one entry of "repvol snapshot list --json": the
 *                     same fields but no "format" or "completed_iso",
 *                     "parent" null for a full snapshot, and "chunks"
 *                     the number of chunks that hold data, not the list.
 */
enum manifest_form { MANIFEST_STORED, MANIFEST_SUMMARY };

/* How many chunks the snapshot holds (not all-zero ones). */
uint64_t manifest_chunks (const struct manifest *m);

/* m as a new json-c object (the caller puts it), NULL when out of
 * memory.
 */
struct json_object *manifest_json (const struct manifest *m,
                                   enum manifest_form form);
/* The stored form as a string, malloc'd; NULL when out of memory. */
char *manifest_to_json (const struct manifest *m);
/* Parse the stored form.  It checks every field and names the first bad
 * one in err; it never trusts the document.  0, or -EINVAL (-ENOMEM).
 */
int manifest_from_json (const char *json, size_t len, struct manifest *m,
                        struct error *err);

/* snapshots/NAME.json.  0, or a negative errno with err filled:
 * -ENOENT if there is no such snapshot, -EINVAL if the manifest is not
 * valid (or names another snapshot), otherwise the store's error.
 * manifest_write checks its document with the reader's rules first.
 */
int manifest_read (struct objstore *os, const char *name, struct manifest *m,
                   struct error *err);
int manifest_write (struct objstore *os, const struct manifest *m,
                    struct error *err);

/* ---- chunk.c ---------------------------------------------------------- */

/* The object key of a chunk: "chunks/HH/HEX". */
void chunk_key (const uint8_t hash[CHUNK_HASH_LEN], char key[OBJ_KEY_MAX]);
void hash_to_hex (const uint8_t hash[CHUNK_HASH_LEN], char hex[CHUNK_HEX_LEN + 1]);
/* 64 lower case hex digits into hash.  0 or -EINVAL. */
int hex_to_hash (const char *hex, uint8_t hash[CHUNK_HASH_LEN]);

/* SHA-256 of len bytes of data. */
void chunk_hash (const void *data, size_t len, uint8_t hash[CHUNK_HASH_LEN]);
/* Compress len bytes into a zstd frame (with its content checksum);
 * *out is malloc'd.  0 or -ENOMEM.
 */
int chunk_encode (const void *data, size_t len, int level, void **out,
                  size_t *out_len);
/* Decompress obj into out, which must come to exactly out_len bytes
 * whose SHA-256 is hash.  0, or -EILSEQ with err naming the chunk's key
 * and what is wrong with it (not zstd, wrong size, hash mismatch).
 */
int chunk_decode (const void *obj, size_t obj_len,
                  const uint8_t hash[CHUNK_HASH_LEN], void *out,
                  size_t out_len, struct error *err);

/* ---- gc.c ------------------------------------------------------------- */

/* One line per snapshot for "repvol snapshot list": read every manifest
 * (names sorted), fn for each; a manifest that cannot be parsed is
 * skipped with a warning.  A non-zero return from fn stops and is
 * returned; else 0, or a negative errno with err filled.
 */
int snapshot_list (struct objstore *os,
                   int (*fn) (void *opaque, const struct manifest *m),
                   void *opaque, struct error *err);

struct delete_stats {
  uint64_t chunks_deleted, bytes_freed;
  uint64_t chunks_kept;         /* still referenced by other snapshots */
  bool collection_skipped;      /* an upload was in progress, or a
                                   remaining manifest was unreadable */
  char skip_reason[OBJ_KEY_MAX + 64]; /* why, when collection_skipped */
};

/* Delete snapshot name: remove its manifest, then every chunk that no
 * remaining manifest references (mark and sweep over the manifests that
 * exist after the removal, so two deletes at once never remove a chunk
 * either's survivors need).  0, or a negative errno with err filled:
 * -ENOENT if there is no such snapshot; after the manifest is gone, an
 * error means some unreferenced chunks may remain (the next delete
 * collects them).
 */
int snapshot_delete (struct objstore *os, const char *name,
                     struct delete_stats *st, struct error *err);

/* Mark an upload in progress (inprogress/NAME) or done.  begin waits
 * (up to 10 minutes) for a running collection (collecting/...) to end
 * before it returns: only then may the upload deduplicate against chunks
 * already in the store.  0 or a negative errno with err filled (-EBUSY
 * if a collection never ended).
 */
int snapshot_begin_upload (struct objstore *os, const char *name,
                           struct error *err);
int snapshot_end_upload (struct objstore *os, const char *name,
                         struct error *err);

#endif
