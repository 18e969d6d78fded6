/* s3_xml.c - S3's XML: the answers we read (errors, the UploadId of a
 * new multipart upload, ListObjectsV2 pages) and the one body we send
 * (CompleteMultipartUpload).  See s3_internal.h.
 *
 * Not a general XML parser: S3's answers are flat and their elements
 * never nest in themselves, so finding <Tag>text</Tag> in a range and
 * decoding the text's entities is all it takes.  A missing element
 * reads as absent, never as a guess.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore/s3_internal.h"

/* Find <tag>text</tag> in [p, end).  Sets *vs and *ve around the text and
 * returns the end of the closing tag, or NULL.
 */
static const char *
xml_find (const char *p, const char *end, const char *tag,
          const char **vs, const char **ve)
{
  char open[64], close[64];
  int no = snprintf (open, sizeof open, "<%s>", tag);
  int nc = snprintf (close, sizeof close, "</%s>", tag);
  if (p == NULL || p >= end)
    return NULL;
  const char *a = memmem (p, end - p, open, no);
  if (a == NULL)
    return NULL;
  a += no;
  const char *b = memmem (a, end - a, close, nc);
  if (b == NULL)
    return NULL;
  *vs = a;
  *ve = b;
  return b + nc;
}

static size_t
utf8_put (char *o, unsigned long cp)
{
  if (cp < 0x80) {
    o[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = 0xc0 | (cp >> 6);
    o[1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = 0xe0 | (cp >> 12);
    o[1] = 0x80 | ((cp >> 6) & 0x3f);
    o[2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  o[0] = 0xf0 | (cp >> 18);
  o[1] = 0x80 | ((cp >> 12) & 0x3f);
  o[2] = 0x80 | ((cp >> 6) & 0x3f);
  o[3] = 0x80 | (cp & 0x3f);
  return 4;
}

/* The text of [s, e) with XML entities decoded, malloc'd.  The output
 * is never longer than the input (an entity is at least as long as its
 * UTF-8).  An entity we do not know is kept as written.
 */
static char *
xml_text (const char *s, const char *e)
{
  char *out = malloc (e - s + 1), *o = out;
  static const struct { const char *name; char c; } ents[] = {
    { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' },
    { "apos;", '\'' },
  };
  if (out == NULL)
    return NULL;
  while (s < e) {
    if (*s != '&') {
      *o++ = *s++;
      continue;
    }
    const char *p = s + 1;
    size_t left = e - p;
    bool done = false;
    for (size_t i = 0; i < sizeof ents / sizeof ents[0] && !done; i++) {
      size_t n = strlen (ents[i].name);
      if (left >= n && memcmp (p, ents[i].name, n) == 0) {
        *o++ = ents[i].c;
        s = p + n;
        done = true;
      }
    }
    if (!done && left >= 3 && *p == '#') {
      const char *semi = memchr (p, ';', left > 10 ? 10 : left);
      unsigned long cp = 0;
      bool hex = p[1] == 'x' || p[1] == 'X';
      const char *d = p + 1 + hex;
      bool ok = semi && d < semi;
      for (; ok && d < semi; d++) {
        int v;
        if (*d >= '0' && *d <= '9') v = *d - '0';
        else if (hex && *d >= 'a' && *d <= 'f') v = *d - 'a' + 10;
        else if (hex && *d >= 'A' && *d <= 'F') v = *d - 'A' + 10;
        else { ok = false; break; }
        cp = cp * (hex ? 16 : 10) + v;
        if (cp > 0x10ffff)
          ok = false;
      }
      /* "&#1;" is 4 bytes and its UTF-8 is 1; "&#x10000;" is 9 and 4:
       * the output never overtakes the input.
       */
      if (ok && cp != 0) {
        o += utf8_put (o, cp);
        s = semi + 1;
        done = true;
      }
    }
    if (!done)
      *o++ = *s++;
  }
  *o = '\0';
  return out;
}

/* The decoded text of the first <tag> in [p, end), malloc'd; NULL when
 * there is none (or out of memory).
 */
static char *
xml_get (const char *p, const char *end, const char *tag)
{
  const char *vs, *ve;
  return xml_find (p, end, tag, &vs, &ve) ? xml_text (vs, ve) : NULL;
}

void
s3_xml_error (const char *body, size_t len, char *out, size_t outlen)
{
  out[0] = '\0';
  if (body == NULL || len == 0)
    return;
  char *code = xml_get (body, body + len, "Code");
  char *msg = xml_get (body, body + len, "Message");
  if (code && msg && *msg)
    snprintf (out, outlen, " %s: %s", code, msg);
  else if (code)
    snprintf (out, outlen, " %s", code);
  free (code);
  free (msg);
  /* One line, whatever the server put in it. */
  for (char *p = out; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
}

bool
s3_error_is (const char *errtext, const char *code)
{
  size_t n = strlen (code);
  return errtext[0] == ' ' && strncmp (errtext + 1, code, n) == 0 &&
    (errtext[1 + n] == '\0' || errtext[1 + n] == ':');
}

char *
s3_xml_upload_id (const char *body, size_t len)
{
  const char *vs, *ve;
  if (body == NULL ||
      !xml_find (body, body + len, "UploadId", &vs, &ve) || vs == ve)
    return NULL;
  return xml_text (vs, ve);
}

char *
s3_xml_complete_body (const char (*etags)[ETAG_MAX], int nparts, size_t *len)
{
  size_t cap = 128 + (size_t) nparts * (64 + ETAG_MAX);
  char *xml = malloc (cap);
  if (xml == NULL)
    return NULL;
  size_t n = snprintf (xml, cap, "<CompleteMultipartUpload>");
  for (int i = 0; i < nparts; i++) {
    /* An ETag is a quoted hex string; anything else is escaped. */
    char et[ETAG_MAX * 6], *o = et;
    for (const char *s = etags[i]; *s; s++)
      o += *s == '&' ? sprintf (o, "&amp;") : *s == '<' ? sprintf (o, "&lt;")
        : *s == '>' ? sprintf (o, "&gt;") : (*o = *s, 1);
    *o = '\0';
    /* Room for this part (under 64 bytes besides the ETag) and for the
     * closing tag after it: without the latter, ETags that escape long
     * (a server's ETag of '&'s) left the last snprintf truncated while
     * *len still counted it, and the upload read past the buffer.
     */
    size_t need = strlen (et) + 64 + sizeof "</CompleteMultipartUpload>";
    if (n + need >= cap) {
      cap = 2 * cap + need;
      char *p = realloc (xml, cap);
      if (p == NULL) {
        free (xml);
        return NULL;
      }
      xml = p;
    }
    n += snprintf (xml + n, cap - n, "<Part><PartNumber>%d</PartNumber>"
                   "<ETag>%s</ETag></Part>", i + 1, et);
  }
  n += snprintf (xml + n, cap - n, "</CompleteMultipartUpload>");
  *len = n;
  return xml;
}

int
s3_xml_each_object (const char *body, size_t len,
                    int (*fn) (void *opaque, const char *key,
                               const char *size, const char *mtime),
                    void *opaque)
{
  const char *p = body, *end = body + len, *cs, *ce;
  int r = 0;
  while (r == 0 && (p = xml_find (p, end, "Contents", &cs, &ce)) != NULL) {
    char *key = xml_get (cs, ce, "Key");
    char *size = xml_get (cs, ce, "Size");
    char *mtime = xml_get (cs, ce, "LastModified");
    r = fn (opaque, key, size, mtime);
    free (key);
    free (size);
    free (mtime);
  }
  return r;
}

bool
s3_xml_truncated (const char *body, size_t len)
{
  const char *vs, *ve;
  return xml_find (body, body + len, "IsTruncated", &vs, &ve) &&
    ve - vs == 4 && memcmp (vs, "true", 4) == 0;
}

char *
s3_xml_next_token (const char *body, size_t len)
{
  const char *vs, *ve;
  if (xml_find (body, body + len, "NextContinuationToken", &vs, &ve) &&
      vs < ve)
    return xml_text (vs, ve);
  return NULL;
}

time_t
s3_parse_time (const char *s)
{
  struct tm tm = { 0 };
  if (sscanf (s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
              &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return 0;
  /* The server's text, not a clock: a year of -2147483648 made the
   * - 1900 below overflow (undefined behaviour).  Out of range is "not
   * a time" like any other malformed text.
   */
  if (tm.tm_year < 1 || tm.tm_year > 9999 || tm.tm_mon < 1 ||
      tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
      tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm (&tm);
}
