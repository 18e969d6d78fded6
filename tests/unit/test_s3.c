/* test_s3.c - the pieces of the s3:// backend that need no server:
 * reading S3's XML answers and writing the multipart completion body
 * (objstore/s3_xml.c), and the canonical URLs and queries SigV4 signs
 * (objstore/s3_sign.c).  Requests against a server are the integration
 * tests' (030, 031, 045).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "objstore/s3_internal.h"

/* ---- s3_xml.c -------------------------------------------------------- */

static void
test_error_text (void **state)
{
  char out[256];
  const char *body =
    "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
    "<Message>Please\nreduce &amp; retry &lt;now&gt; &#233;&#x263A;</Message>"
    "</Error>";

  s3_xml_error (body, strlen (body), out, sizeof out);
  /* Entities decoded (UTF-8 for the numeric ones), on one line. */
  assert_string_equal (out, " SlowDown: Please reduce & retry <now> "
                       "\xc3\xa9\xe2\x98\xba");
  assert_true (s3_error_is (out, "SlowDown"));
  assert_false (s3_error_is (out, "Slow"));
  assert_false (s3_error_is (out, "SlowDownNow"));

  /* A code without a message, and no code at all. */
  body = "<Error><Code>NoSuchBucket</Code><Message></Message></Error>";
  s3_xml_error (body, strlen (body), out, sizeof out);
  assert_string_equal (out, " NoSuchBucket");
  assert_true (s3_error_is (out, "NoSuchBucket"));
  body = "<html>502 Bad Gateway</html>";
  s3_xml_error (body, strlen (body), out, sizeof out);
  assert_string_equal (out, "");
  s3_xml_error (NULL, 0, out, sizeof out);
  assert_string_equal (out, "");
  assert_false (s3_error_is (out, "SlowDown"));

  /* Unknown or broken entities are kept as written. */
  body = "<Error><Code>X</Code><Message>&nbsp; &#; &#xZZ; &#0; &</Message>"
    "</Error>";
  s3_xml_error (body, strlen (body), out, sizeof out);
  assert_string_equal (out, " X: &nbsp; &#; &#xZZ; &#0; &");
}

static void
test_upload_id (void **state)
{
  const char *body = "<InitiateMultipartUploadResult><Bucket>b</Bucket>"
    "<UploadId>2~abc&amp;def</UploadId></InitiateMultipartUploadResult>";
  char *id = s3_xml_upload_id (body, strlen (body));
  assert_non_null (id);
  assert_string_equal (id, "2~abc&def");
  free (id);
  body = "<InitiateMultipartUploadResult><UploadId></UploadId>";
  assert_null (s3_xml_upload_id (body, strlen (body)));
  assert_null (s3_xml_upload_id ("<x/>", 4));
  assert_null (s3_xml_upload_id (NULL, 0));
}

static void
test_complete_body (void **state)
{
  char etags[3][ETAG_MAX] = { "\"e1\"", "\"a&b<c>\"", "" };
  size_t len;
  char *xml = s3_xml_complete_body ((const char (*)[ETAG_MAX]) etags, 3,
                                    &len);
  assert_non_null (xml);
  assert_int_equal (len, strlen (xml));
  assert_string_equal (xml, "<CompleteMultipartUpload>"
                       "<Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>"
                       "<Part><PartNumber>2</PartNumber>"
                       "<ETag>\"a&amp;b&lt;c&gt;\"</ETag></Part>"
                       "<Part><PartNumber>3</PartNumber><ETag></ETag></Part>"
                       "</CompleteMultipartUpload>");
  free (xml);

  /* Many parts with the longest ETags: the buffer grows. */
  enum { N = 500 };
  char (*many)[ETAG_MAX] = calloc (N, ETAG_MAX);
  for (int i = 0; i < N; i++)
    memset (many[i], '&', ETAG_MAX - 1);
  xml = s3_xml_complete_body ((const char (*)[ETAG_MAX]) many, N, &len);
  assert_non_null (xml);
  assert_int_equal (len, strlen (xml));
  assert_non_null (strstr (xml, "<PartNumber>500</PartNumber>"));
  assert_true (len > (size_t) N * (ETAG_MAX - 1) * 5);
  free (xml);
  free (many);

  /* One part whose ETag escapes to just under the first buffer: the
   * closing tag must still fit (fuzz_s3_xml found *len counting a
   * truncated tail, 44 to 46 '&'s).
   */
  for (int k = 0; k < ETAG_MAX; k++) {
    char one[1][ETAG_MAX] = { "" };
    memset (one[0], '&', k);
    xml = s3_xml_complete_body ((const char (*)[ETAG_MAX]) one, 1, &len);
    assert_non_null (xml);
    assert_int_equal (len, strlen (xml));
    assert_int_equal (len, 25 + 52 + 5 * k + 26);
    free (xml);
  }
}

struct seen {
  int n;
  char keys[4][64], sizes[4][16], mtimes[4][32];
  bool key_null[4], size_null[4], mtime_null[4];
  int stop_after;
};

static int
on_object (void *opaque, const char *key, const char *size, const char *mtime)
{
  struct seen *s = opaque;
  assert_true (s->n < 4);
  s->key_null[s->n] = key == NULL;
  s->size_null[s->n] = size == NULL;
  s->mtime_null[s->n] = mtime == NULL;
  snprintf (s->keys[s->n], sizeof s->keys[0], "%s", key ? key : "");
  snprintf (s->sizes[s->n], sizeof s->sizes[0], "%s", size ? size : "");
  snprintf (s->mtimes[s->n], sizeof s->mtimes[0], "%s", mtime ? mtime : "");
  s->n++;
  return s->n == s->stop_after ? 7 : 0;
}

static void
test_list_page (void **state)
{
  const char *body =
    "<ListBucketResult><Name>b</Name><IsTruncated>true</IsTruncated>"
    "<Contents><Key>p/a&amp;b</Key><LastModified>2023-11-14T22:13:20.000Z"
    "</LastModified><Size>12</Size></Contents>"
    "<Contents><Key>p/c</Key><Size>0</Size></Contents>"
    "<Contents><Size>3</Size></Contents>"
    "<NextContinuationToken>tok+/=</NextContinuationToken>"
    "</ListBucketResult>";
  size_t len = strlen (body);
  struct seen s = { 0 };

  assert_int_equal (s3_xml_each_object (body, len, on_object, &s), 0);
  assert_int_equal (s.n, 3);
  assert_string_equal (s.keys[0], "p/a&b");
  assert_string_equal (s.sizes[0], "12");
  assert_string_equal (s.mtimes[0], "2023-11-14T22:13:20.000Z");
  assert_string_equal (s.keys[1], "p/c");
  assert_true (s.mtime_null[1]);
  assert_true (s.key_null[2]);
  assert_false (s.size_null[2]);
  assert_true (s3_xml_truncated (body, len));
  char *tok = s3_xml_next_token (body, len);
  assert_non_null (tok);
  assert_string_equal (tok, "tok+/=");
  free (tok);
  assert_int_equal (s3_parse_time (s.mtimes[0]), 1700000000);
  assert_int_equal (s3_parse_time ("yesterday"), 0);
  /* Out of range is not a time (the year used to overflow). */
  assert_int_equal (s3_parse_time ("-2147483648-01-01T00:00:00Z"), 0);
  assert_int_equal (s3_parse_time ("2024-13-01T00:00:00Z"), 0);
  assert_int_equal (s3_parse_time ("2024-01-01T00:00:99Z"), 0);
  assert_int_equal (s3_parse_time ("1970-01-01T00:00:01Z"), 1);

  /* fn's non-zero return stops the walk and comes back. */
  struct seen s2 = { .stop_after = 1 };
  assert_int_equal (s3_xml_each_object (body, len, on_object, &s2), 7);
  assert_int_equal (s2.n, 1);

  /* The last page; an empty token is no token. */
  body = "<ListBucketResult><IsTruncated>false</IsTruncated>"
    "<NextContinuationToken></NextContinuationToken></ListBucketResult>";
  len = strlen (body);
  assert_false (s3_xml_truncated (body, len));
  assert_null (s3_xml_next_token (body, len));
  struct seen s3 = { 0 };
  assert_int_equal (s3_xml_each_object (body, len, on_object, &s3), 0);
  assert_int_equal (s3.n, 0);
  body = "<ListBucketResult><IsTruncated>TRUE</IsTruncated>";
  assert_false (s3_xml_truncated (body, strlen (body)));
}

/* ---- s3_sign.c ------------------------------------------------------- */

static void
test_encode (void **state)
{
  char *e = s3_uri_encode ("a/b c~d_e.f-g+h=i&j%k\xc3\xa9", true);
  assert_string_equal (e, "a/b%20c~d_e.f-g%2Bh%3Di%26j%25k%C3%A9");
  free (e);
  e = s3_uri_encode ("a/b", false);
  assert_string_equal (e, "a%2Fb");
  free (e);
  e = s3_uri_encode ("", false);
  assert_string_equal (e, "");
  free (e);
  assert_true (s3_unreserved ('~'));
  assert_false (s3_unreserved ('/'));
}

static void
test_urls (void **state)
{
  struct s3 s3 = {
    .root = "http://127.0.0.1:8000/bkt", .prefix = "pre fix/",
    .path_style = true,
  };
  char *u = s3_object_url (&s3, "chunks/ab/x", NULL);
  assert_string_equal (u, "http://127.0.0.1:8000/bkt/pre%20fix/chunks/ab/x");
  free (u);
  u = s3_object_url (&s3, "k", "uploads=");
  assert_string_equal (u, "http://127.0.0.1:8000/bkt/pre%20fix/k?uploads=");
  free (u);

  /* Queries sorted by name, every value encoded: libcurl signs them as
   * written.
   */
  char *q = s3_upload_query ("id/+=", 0);
  assert_string_equal (q, "uploadId=id%2F%2B%3D");
  free (q);
  q = s3_upload_query ("id", 12);
  assert_string_equal (q, "partNumber=12&uploadId=id");
  free (q);

  u = s3_list_url (&s3, "snapshots/", NULL, 1000);
  assert_string_equal (u, "http://127.0.0.1:8000/bkt?list-type=2&max-keys=1000"
                       "&prefix=pre%20fix%2Fsnapshots%2F");
  free (u);
  u = s3_list_url (&s3, "", "t/=", 1);
  assert_string_equal (u, "http://127.0.0.1:8000/bkt?continuation-token=t%2F%3D"
                       "&list-type=2&max-keys=1&prefix=pre%20fix%2F");
  free (u);

  /* Virtual-hosted: the bucket is the host, the path starts with '/'. */
  struct s3 aws = { .root = "https://b.s3.eu-west-1.amazonaws.com",
                    .prefix = "" };
  u = s3_list_url (&aws, "", NULL, 1);
  assert_string_equal (u, "https://b.s3.eu-west-1.amazonaws.com/"
                       "?list-type=2&max-keys=1&prefix=");
  free (u);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_error_text),
    cmocka_unit_test (test_upload_id),
    cmocka_unit_test (test_complete_body),
    cmocka_unit_test (test_list_page),
    cmocka_unit_test (test_encode),
    cmocka_unit_test (test_urls),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
