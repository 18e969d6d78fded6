/* s3_sign.c - what SigV4 signing needs from us (see s3_internal.h).
 *
 * The signature itself is libcurl's CURLOPT_AWS_SIGV4.  libcurl 7.88
 * signs the query string exactly as written, so queries here are built
 * sorted by name and percent-encoded, with an "=" after every name; and
 * it does not add x-amz-content-sha256, so we do: the body's SHA-256
 * over plain http (nothing else protects the payload), UNSIGNED-PAYLOAD
 * over https (TLS does), REPVOL_S3_SIGN_PAYLOAD=0/1 to choose.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "objstore/s3_internal.h"

#define EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

bool
s3_unreserved (unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

char *
s3_uri_encode (const char *s, bool keep_slash)
{
  char *out = malloc (3 * strlen (s) + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
    if (s3_unreserved (*p) || (keep_slash && *p == '/'))
      *o++ = *p;
    else
      o += sprintf (o, "%%%02X", *p);
  }
  *o = '\0';
  return out;
}

static void
sha256_hex (const void *data, size_t len, char out[65])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest (data, len, md, &n, EVP_sha256 (), NULL) != 1 || n != 32) {
    /* Cannot happen with a working libcrypto; the server would refuse
     * the request, so the error still surfaces.
     */
    snprintf (out, 65, "%s", "UNSIGNED-PAYLOAD");
    return;
  }
  for (unsigned i = 0; i < 32; i++)
    sprintf (out + 2 * i, "%02x", md[i]);
}

int
s3_sign_setup (struct s3 *s3)
{
  s3->sign_payload = strncmp (s3->root, "http://", 7) == 0;
  const char *sp = objstore_getenv ("REPVOL_S3_SIGN_PAYLOAD");
  if (sp && *sp)
    s3->sign_payload = strcmp (sp, "0") != 0;
  if (asprintf (&s3->sigv4, "aws:amz:%s:s3", s3->cfg.region) == -1) {
    s3->sigv4 = NULL;
    return -ENOMEM;
  }
  if (s3->cfg.session_token &&
      asprintf (&s3->token_hdr, "x-amz-security-token: %s",
                s3->cfg.session_token) == -1) {
    s3->token_hdr = NULL;
    return -ENOMEM;
  }
  return 0;
}

int
s3_sign (struct s3 *s3, CURL *e, const char *method, const void *body,
         size_t body_len, struct curl_slist **headers)
{
  char sha[128] = "x-amz-content-sha256: ";
  bool upload = strcmp (method, "PUT") == 0 || strcmp (method, "POST") == 0;
  if (!upload)
    strcat (sha, EMPTY_SHA256);
  else if (s3->sign_payload)
    sha256_hex (body, body_len, sha + strlen (sha));
  else
    strcat (sha, "UNSIGNED-PAYLOAD");
  struct curl_slist *h = curl_slist_append (*headers, sha);
  if (h == NULL)
    return -ENOMEM;
  *headers = h;
  if (s3->token_hdr && !(h = curl_slist_append (h, s3->token_hdr)))
    return -ENOMEM;
  curl_easy_setopt (e, CURLOPT_AWS_SIGV4, s3->sigv4);
  curl_easy_setopt (e, CURLOPT_USERNAME, s3->cfg.access_key_id);
  curl_easy_setopt (e, CURLOPT_PASSWORD, s3->cfg.secret_access_key);
  return 0;
}

char *
s3_object_url (struct s3 *s3, const char *key, const char *query)
{
  char *full = NULL, *enc = NULL, *url = NULL;
  if (asprintf (&full, "%s%s", s3->prefix, key) == -1)
    return NULL;
  enc = s3_uri_encode (full, true);
  if (enc && asprintf (&url, "%s/%s%s%s", s3->root, enc,
                       query ? "?" : "", query ? query : "") == -1)
    url = NULL;
  free (full);
  free (enc);
  return url;
}

char *
s3_upload_query (const char *upload_id, int part)
{
  char *enc = s3_uri_encode (upload_id, false), *q = NULL;
  if (enc == NULL)
    return NULL;
  /* Sorted: partNumber before uploadId. */
  int n = part > 0 ? asprintf (&q, "partNumber=%d&uploadId=%s", part, enc)
    : asprintf (&q, "uploadId=%s", enc);
  if (n == -1)
    q = NULL;
  free (enc);
  return q;
}

char *
s3_list_url (struct s3 *s3, const char *prefix, const char *token,
             int max_keys)
{
  char *full = NULL, *encp = NULL, *enct = NULL, *url = NULL;

  if (asprintf (&full, "%s%s", s3->prefix, prefix) == -1)
    full = NULL;
  if (full)
    encp = s3_uri_encode (full, false);
  if (token)
    enct = s3_uri_encode (token, false);
  /* Sorted by name: continuation-token, list-type, max-keys, prefix. */
  if (encp && (enct || !token) &&
      asprintf (&url, "%s%s?%s%s%slist-type=2&max-keys=%d&prefix=%s",
                s3->root, s3->path_style ? "" : "/",
                token ? "continuation-token=" : "", token ? enct : "",
                token ? "&" : "", max_keys, encp) == -1)
    url = NULL;
  free (full);
  free (encp);
  free (enct);
  return url;
}
