/* etcd_watch.c - waiting on etcd's watch stream (POST /v3/watch through
 * the JSON gateway), for followers of the event stream.
 *
 * The gateway answers a watch with a stream of JSON objects, one per
 * line: first {"result": {"created": true, ...}}, then one per batch of
 * changes ({"result": {"events": [...]}}).  A wait only needs to know
 * that something changed: the caller then reads what with a range.  So
 * the stream is read until a line names "events" (or a compaction: the
 * revision asked for is gone, so look), then dropped; the wait is
 * bounded by the caller's timeout, and what arrives by 64 KiB.  Each
 * wait has a curl handle of its own: the client's handle may be in use
 * by another thread's request meanwhile.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/util.h"
#include "registry/etcd_internal.h"

#define WATCH_MAX (64u << 10)

struct watch_buf {
  char data[WATCH_MAX + 1];
  size_t len;
  bool changed;
};

static size_t
on_data (char *p, size_t size, size_t n, void *opaque)
{
  struct watch_buf *w = opaque;
  size_t len = size * n, room = WATCH_MAX - w->len;

  memcpy (w->data + w->len, p, len < room ? len : room);
  w->len += len < room ? len : room;
  w->data[w->len] = '\0';
  if (strstr (w->data, "\"events\"") || strstr (w->data, "compact_revision")) {
    w->changed = true;
    return 0;                   /* enough: abort the transfer */
  }
  if (w->len == WATCH_MAX)
    w->len = 0;                 /* a long quiet stream: keep the tail only */
  return len;
}

int
etcd_watch_wait (struct etcd_client *c, json_object *req, int timeout_ms,
                 struct error *err)
{
  const char *body = json_object_to_json_string_ext (req, JSON_C_TO_STRING_PLAIN);
  struct watch_buf *w = calloc (1, sizeof *w);
  CURL *h = curl_easy_init ();
  struct curl_slist *hdr = curl_slist_append (NULL, "Content-Type: application/json");
  char url[400], errbuf[CURL_ERROR_SIZE] = "";
  int ret;

  if (w == NULL || h == NULL || hdr == NULL || body == NULL) {
    ret = error_set (err, ENOMEM, "etcd: out of memory");
    goto out;
  }
  const struct etcd_endpoint *ep = &c->ep[c->cur];
  snprintf (url, sizeof url, "%s/v3/watch", ep->url);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt (h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, w);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT_MS, (long) ETCD_CONNECT_MS);
  curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
  if (c->tls) {
    curl_easy_setopt (h, CURLOPT_CAINFO, c->cafile);
    curl_easy_setopt (h, CURLOPT_SSLCERT, c->certfile);
    curl_easy_setopt (h, CURLOPT_SSLKEY, c->keyfile);
  }
  CURLcode rc = curl_easy_perform (h);
  if (w->changed)
    ret = 1;
  else if (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_OK)
    ret = 0;                    /* quiet for the whole wait */
  else
    ret = error_set (err, EIO, "etcd %s: watch: %s", ep->hostport,
                     errbuf[0] ? errbuf : curl_easy_strerror (rc));
 out:
  if (h)
    curl_easy_cleanup (h);
  curl_slist_free_all (hdr);
  free (w);
  return ret;
}
