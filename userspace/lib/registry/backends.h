/* backends.h - what registry.c and the registry backends share (and the
 * unit tests): each backend's constructor and the record codec.
 * Everything else goes through registry.h.
 */
#ifndef REPVOL_REGISTRY_BACKENDS_H
#define REPVOL_REGISTRY_BACKENDS_H

#include <stddef.h>

#include "registry/registry.h"

struct error;

/* The table every backend fills.  Each operation returns 0 or a
 * negative errno with the reason in *err (which may be NULL), as the
 * registry_* wrappers of registry.h document; the wrappers have checked
 * the arguments (names valid, pointers set) before a backend sees them.
 */
struct registry_ops {
  const char *name;
  int (*create) (struct registry *r, const struct reg_volume *v,
                 struct error *err);
  int (*get) (struct registry *r, const char *name, struct reg_volume *v,
              struct error *err);
  int (*update) (struct registry *r, const char *name,
                 int (*fn) (struct reg_volume *v, void *arg), void *arg,
                 struct error *err);
  int (*remove) (struct registry *r, const char *name, struct error *err);
  int (*list) (struct registry *r, char ***names, int *n, struct error *err);
  int (*blob_put) (struct registry *r, const char *name, const char *kind,
                   const void *data, size_t len, struct error *err);
  int (*blob_get) (struct registry *r, const char *name, const char *kind,
                   void **data, size_t *len, struct error *err);
  int (*blob_remove) (struct registry *r, const char *name, const char *kind,
                      struct error *err);
  int (*server_put) (struct registry *r, const struct reg_server *s,
                     unsigned ttl, struct error *err);
  int (*server_down) (struct registry *r, const char *name,
                      struct error *err);
  int (*server_list) (struct registry *r, struct reg_server **servers,
                      int *n, struct error *err);
  /* Mark a known server draining (on) or not; the mark is kept apart
   * from the record the server rewrites at every refresh.
   */
  int (*server_drain) (struct registry *r, const char *name, bool on,
                       struct error *err);
  /* Registry-wide settings: get (-ENOENT when unset), put (value NULL:
   * unset).
   */
  int (*setting_get) (struct registry *r, const char *key, char *value,
                      size_t len, struct error *err);
  int (*setting_put) (struct registry *r, const char *key,
                      const char *value, struct error *err);
  /* Events: append ev (revision set by the backend); list those after
   * since in order; wait until one after since may exist or timeout_ms
   * passed (1 or 0).
   */
  int (*event_append) (struct registry *r, const struct reg_event *ev,
                       struct error *err);
  int (*event_list) (struct registry *r, uint64_t since,
                     int (*fn) (const struct reg_event *ev, void *arg),
                     void *arg, struct error *err);
  int (*event_wait) (struct registry *r, uint64_t since, int timeout_ms,
                     struct error *err);
  void (*close) (struct registry *r);
};

struct registry {
  const struct registry_ops *ops;
  void *priv;
  char *location;               /* as opened (registry.c), for open_again */
};

/* dir.c: a directory of VOLNAME.json files.  The directory need not
 * exist yet; it is created (mode 0700) by the first registry_create().
 * NULL with the reason in *err.
 */
struct registry *registry_dir_open (const char *path, struct error *err);

/* etcd.c: etcd's v3 API through its JSON gateway, location
 * "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]" (PREFIX default /repvol).
 * Nothing is contacted until the first operation.  NULL with the reason
 * in *err (a malformed location).
 */
struct registry *registry_etcd_open (const char *location,
                                     struct error *err);

/* codec.c: the volume record every backend stores (dir.c as a file, a
 * etcd.c as the value of a key).
 *
 * reg_volume_check: 0, or -EINVAL with the reason, for a record that
 * must not be stored.  reg_volume_to_json: the document, malloc'd (NULL:
 * out of memory).  reg_volume_from_json: parse and check a document; 0,
 * or -EBADMSG with the reason ("key \"size\" is negative").
 */
int reg_volume_check (const struct reg_volume *v, struct error *err);
char *reg_volume_to_json (const struct reg_volume *v);
int reg_volume_from_json (const char *text, size_t len, struct reg_volume *v,
                          struct error *err);

/* codec.c: a server record (registry.h) as JSON, "up" not included:
 * that is the backend's to say.  to_json: malloc'd (NULL: out of
 * memory).  from_json: 0 or -EBADMSG with the reason.
 */
int reg_server_check (const struct reg_server *s, struct error *err);
char *reg_server_to_json (const struct reg_server *s);
int reg_server_from_json (const char *text, size_t len, struct reg_server *s,
                          struct error *err);
/* Sort by name (qsort). */
int reg_server_cmp (const void *a, const void *b);

/* events.c: an event as one line of JSON (malloc'd; NULL: out of
 * memory), and back (0 or -EBADMSG with the reason).
 */
char *reg_event_to_text (const struct reg_event *ev);
int reg_event_from_text (const char *text, size_t len, struct reg_event *ev,
                         struct error *err);
/* The most events a stream keeps: REG_EVENTS_MAX, or
 * $REPVOL_EVENTS_MAX (1 or more; for tests).
 */
unsigned reg_events_max (void);

/* dir.c: the directory of a directory registry (dir_events.c). */
const char *registry_dir_path (struct registry *r);
/* dir_events.c and etcd_events.c: the event operations. */
int dir_event_append (struct registry *r, const struct reg_event *ev,
                      struct error *err);
int dir_event_list (struct registry *r, uint64_t since,
                    int (*fn) (const struct reg_event *ev, void *arg),
                    void *arg, struct error *err);
int dir_event_wait (struct registry *r, uint64_t since, int timeout_ms,
                    struct error *err);
int etcd_event_append (struct registry *r, const struct reg_event *ev,
                       struct error *err);
int etcd_event_list (struct registry *r, uint64_t since,
                     int (*fn) (const struct reg_event *ev, void *arg),
                     void *arg, struct error *err);
int etcd_event_wait (struct registry *r, uint64_t since, int timeout_ms,
                     struct error *err);

#endif
