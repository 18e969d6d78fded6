/* libFuzzer harness for objstore/s3_xml.c: every reader of S3's XML
 * answers gets the input as a response body (error text, UploadId,
 * ListObjectsV2 entries, IsTruncated, NextContinuationToken, the
 * LastModified time), and the input also supplies ETags for the one body
 * we write (CompleteMultipartUpload).
 *
 * Invariants (abort on violation):
 *   - the error text is one line, starts with ' ' or is empty, fits;
 *   - every decoded text is no longer than the body, and escaping it and
 *     wrapping it in its element again decodes to the same text: the
 *     listing re-built from the decoded entries lists the same entries;
 *   - a callback's non-zero return stops the listing and is returned;
 *   - the CompleteMultipartUpload body is exactly *len bytes, has one
 *     <Part> per ETag, and each <ETag> decodes back to the ETag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/s3_internal.h"

/* A growing buffer; the harness aborts when out of memory (never here). */
struct buf {
  char *p;
  size_t n, cap;
};

static void
put (struct buf *b, const char *s, size_t n)
{
  if (b->n + n + 1 > b->cap) {
    b->cap = 2 * (b->n + n + 1);
    b->p = realloc (b->p, b->cap);
    if (b->p == NULL)
      abort ();
  }
  memcpy (b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void
puts_ (struct buf *b, const char *s)
{
  put (b, s, strlen (s));
}

/* s escaped the way an XML writer would. */
static void
put_escaped (struct buf *b, const char *s)
{
  for (; *s; s++)
    puts_ (b, *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
           : (char[2]) { *s, 0 });
}

static bool
same (const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a && b && strcmp (a, b) == 0);
}

/* ---- the listing ------------------------------------------------------ */

#define MAX_SEEN 64

struct seen {
  size_t body_len;
  int n, stop_at, stop_ret;
  char *key[MAX_SEEN], *size[MAX_SEEN], *mtime[MAX_SEEN];
};

static char *
dup_or_null (const char *s)
{
  if (s == NULL)
    return NULL;
  char *d = strdup (s);
  if (d == NULL)
    abort ();
  return d;
}

static int
on_object (void *opaque, const char *key, const char *size, const char *mtime)
{
  struct seen *sn = opaque;
  const char *f[3] = { key, size, mtime };
  for (int i = 0; i < 3; i++) {
    if (f[i] && strlen (f[i]) > sn->body_len)
      abort ();
    if (f[i])
      (void) s3_parse_time (f[i]);
  }
  if (sn->n < MAX_SEEN) {
    sn->key[sn->n] = dup_or_null (key);
    sn->size[sn->n] = dup_or_null (size);
    sn->mtime[sn->n] = dup_or_null (mtime);
  }
  if (++sn->n == sn->stop_at)
    return sn->stop_ret;
  return 0;
}

static void
seen_free (struct seen *sn)
{
  for (int i = 0; i < sn->n && i < MAX_SEEN; i++) {
    free (sn->key[i]);
    free (sn->size[i]);
    free (sn->mtime[i]);
  }
}

static void
put_elem (struct buf *b, const char *tag, const char *text)
{
  if (text == NULL)
    return;
  puts_ (b, "<");
  puts_ (b, tag);
  puts_ (b, ">");
  put_escaped (b, text);
  puts_ (b, "</");
  puts_ (b, tag);
  puts_ (b, ">");
}

static void
check_listing (const char *body, size_t len, int stop_at)
{
  struct seen a = { .body_len = len, .stop_at = stop_at, .stop_ret = 42 };
  int r = s3_xml_each_object (body, len, on_object, &a);
  /* Stopped exactly at stop_at, with fn's value; else ran to the end. */
  if (stop_at > 0 ? (r == 42) != (a.n == stop_at) : r != 0)
    abort ();

  /* The same entries written back as a listing read the same. */
  if (r == 0 && a.n <= MAX_SEEN) {
    struct buf b = { 0 };
    puts_ (&b, "<ListBucketResult>");
    for (int i = 0; i < a.n; i++) {
      puts_ (&b, "<Contents>");
      put_elem (&b, "Key", a.key[i]);
      put_elem (&b, "Size", a.size[i]);
      put_elem (&b, "LastModified", a.mtime[i]);
      puts_ (&b, "</Contents>");
    }
    puts_ (&b, "</ListBucketResult>");
    struct seen c = { .body_len = b.n };
    if (s3_xml_each_object (b.p, b.n, on_object, &c) != 0 || c.n != a.n)
      abort ();
    for (int i = 0; i < a.n; i++)
      if (!same (a.key[i], c.key[i]) || !same (a.size[i], c.size[i]) ||
          !same (a.mtime[i], c.mtime[i]))
        abort ();
    seen_free (&c);
    free (b.p);
  }
  seen_free (&a);
}

/* ---- single texts ------------------------------------------------------ */

/* text, escaped and wrapped in <tag>, read by get must give text again. */
static void
check_text (const char *text, size_t body_len, const char *tag,
            char *(*get) (const char *, size_t))
{
  if (text == NULL)
    return;
  if (strlen (text) > body_len)
    abort ();
  if (*text == '\0')
    return;                     /* a NUL first: nothing to wrap */
  struct buf b = { 0 };
  put_elem (&b, tag, text);
  char *again = get (b.p, b.n);
  if (!same (text, again))
    abort ();
  free (again);
  free (b.p);
}

static void
check_error (const char *body, size_t len, size_t outlen)
{
  char *out = malloc (outlen);  /* exact size: ASan sees any overrun */
  if (out == NULL)
    abort ();
  s3_xml_error (body, len, out, outlen);
  size_t n = strnlen (out, outlen);
  if (n == outlen)
    abort ();                   /* not terminated */
  if (n > 0 && out[0] != ' ')
    abort ();
  if (strpbrk (out, "\r\n\t") != NULL)
    abort ();
  if (s3_error_is (out, "NoSuchKey") &&
      strncmp (out, " NoSuchKey", 10) != 0)
    abort ();
  free (out);
}

/* ---- the body we write ------------------------------------------------- */

#define MAX_ETAGS 8

static void
check_complete_body (const uint8_t *data, size_t size)
{
  /* ETags from the input: NUL-free runs of at most ETAG_MAX - 1 bytes,
   * as s3_http.c's header callback stores them.
   */
  static char etags[MAX_ETAGS][ETAG_MAX];
  int n = 0;
  size_t i = 0;
  while (n < MAX_ETAGS && i < size) {
    size_t k = 0;
    while (i < size && data[i] != '\0' && k < ETAG_MAX - 1)
      etags[n][k++] = data[i++];
    etags[n][k] = '\0';
    n++;
    while (i < size && data[i] == '\0')
      i++;
  }
  if (n == 0)
    return;

  size_t len = 0;
  char *xml = s3_xml_complete_body ((const char (*)[ETAG_MAX]) etags, n,
                                    &len);
  if (xml == NULL)
    abort ();
  if (strlen (xml) != len)
    abort ();                   /* what would be uploaded is not the body */
  const char *p = xml, *end = xml + len;
  int parts = 0;
  for (;;) {
    const char *a = memmem (p, end - p, "<ETag>", 6);
    if (a == NULL)
      break;
    const char *b = memmem (a, end - a, "</ETag>", 7);
    if (b == NULL || parts >= n)
      abort ();
    /* Decode with the library's own reader. */
    struct buf w = { 0 };
    puts_ (&w, "<UploadId>");
    put (&w, a + 6, b - a - 6);
    puts_ (&w, "</UploadId>");
    char *et = s3_xml_upload_id (w.p, w.n);
    if (!same (et ? et : "", etags[parts]))
      abort ();
    free (et);
    free (w.p);
    parts++;
    p = b + 7;
  }
  if (parts != n)
    abort ();
  free (xml);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* A copy without a terminator, so reads past len are caught. */
  char *body = malloc (size ? size : 1);
  if (body == NULL)
    abort ();
  memcpy (body, data, size);

  check_error (body, size, 256);
  check_error (body, size, 1 + (size ? data[0] % 64 : 0));

  char *id = s3_xml_upload_id (body, size);
  check_text (id, size, "UploadId", s3_xml_upload_id);
  free (id);

  (void) s3_xml_truncated (body, size);
  char *tok = s3_xml_next_token (body, size);
  check_text (tok, size, "NextContinuationToken", s3_xml_next_token);
  free (tok);

  check_listing (body, size, 0);
  check_listing (body, size, size ? 1 + data[size - 1] % 4 : 1);

  free (body);

  /* The input as a time, NUL-terminated. */
  char t[64];
  size_t tn = size < sizeof t - 1 ? size : sizeof t - 1;
  memcpy (t, data, tn);
  t[tn] = '\0';
  (void) s3_parse_time (t);

  check_complete_body (data, size);
  return 0;
}
