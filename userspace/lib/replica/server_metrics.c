/* server_metrics.c - what repvold counts for --metrics (docs/DESIGN.md
 * 2.9): per volume, its store requests (counts, bytes, errors,
 * latency from dispatch to completion), open data connections, the
 * stored epoch and the requests refused; for the process, connections
 * accepted, open and refused at a limit, TLS handshakes that failed,
 * and every refusal by reason.
 *
 * A volume's series are found (metrics_add) once per connection, when
 * it names a volume this server holds (HELLO, CREATE), never per
 * request: names a client makes up cost nothing.  Series stay until the
 * process exits, a deleted volume's included.
 */
#include "metrics/metrics.h"
#include "replica/server_internal.h"

#define SAMPLE_MS 1000          /* listener counters copied this often */

static const char *const reason_name[RS_REFUSE_COUNT] = {
  [RS_REFUSE_BAD_FRAME] = "bad_frame", [RS_REFUSE_CRC] = "crc",
  [RS_REFUSE_AUTH] = "auth", [RS_REFUSE_TLS] = "tls_required",
  [RS_REFUSE_EPOCH] = "epoch", [RS_REFUSE_FENCED] = "fenced",
  [RS_REFUSE_BUSY] = "busy",
};

static void
sample (struct loop_timer *t)
{
  struct replica_server *srv = t->opaque;

  metric_set (srv->mx.limit_refused, (int64_t) srv->listener.refused);
  loop_timer_arm (srv->loop, &srv->mx.timer, SAMPLE_MS, sample, srv);
}

void
replica_server_set_metrics (struct replica_server *srv, struct metrics *m)
{
  struct rs_metrics *x = &srv->mx;

  x->m = m;
  x->accepted = metrics_add (m, METRIC_COUNTER,
                             "repvold_connections_accepted_total",
                             "Connections accepted.", NULL);
  x->open = metrics_add (m, METRIC_GAUGE, "repvold_connections_open",
                         "Connections open now, admin ones included.", NULL);
  x->limit_refused = metrics_add (m, METRIC_COUNTER,
                                  "repvold_connections_refused_total",
                                  "Connections closed at accept: over "
                                  "--max-connections or "
                                  "--max-connections-per-peer.", NULL);
  x->tls_failed = metrics_add (m, METRIC_COUNTER,
                               "repvold_tls_handshake_failures_total",
                               "TLS handshakes that failed.", NULL);
  for (int i = 0; i < RS_REFUSE_COUNT; i++)
    x->refused[i] = metrics_add (m, METRIC_COUNTER, "repvold_refused_total",
                                 "HELLOs and requests refused, by reason.",
                                 "reason", reason_name[i], NULL);
  if (m)
    loop_timer_arm (srv->loop, &x->timer, SAMPLE_MS, sample, srv);
}

void
rs_metrics_fini (struct replica_server *srv)
{
  if (srv->mx.m)
    loop_timer_cancel (srv->loop, &srv->mx.timer);
}

void
rs_metrics_bind (struct rs_conn *rc, struct store_vol *v)
{
  struct metrics *m = rc->srv->mx.m;
  struct rs_vol_metrics *vm = &rc->vm;
  const char *name = rc->volname;

  if (!m || vm->bound)
    return;
  vm->bound = true;
  metrics_io_init (&vm->io, m, "repvold_volume", "volume", name);
  vm->conns = metrics_add (m, METRIC_GAUGE, "repvold_volume_connections",
                           "Data connections (attaches) open on the volume.",
                           "volume", name, NULL);
  vm->epoch = metrics_add (m, METRIC_GAUGE, "repvold_volume_epoch",
                           "The epoch stored with the volume.",
                           "volume", name, NULL);
  for (int i = 0; i < RS_REFUSE_COUNT; i++)
    vm->refused[i] = metrics_add (m, METRIC_COUNTER,
                                  "repvold_volume_refused_total",
                                  "HELLOs and requests naming the volume "
                                  "refused, by reason.", "volume", name,
                                  "reason", reason_name[i], NULL);
  rs_metrics_epoch (rc, v);
}

void
rs_metrics_epoch (struct rs_conn *rc, struct store_vol *v)
{
  if (v)
    metric_set (rc->vm.epoch, (int64_t) store_vol_meta (v)->epoch);
}

void
rs_metrics_conn (struct rs_conn *rc, int delta)
{
  if (delta > 0 && !rc->admin && rc->vm.bound && !rc->vm.counted) {
    rc->vm.counted = true;
    metric_gauge_add (rc->vm.conns, 1);
  }
  else if (delta < 0 && rc->vm.counted) {
    rc->vm.counted = false;
    metric_gauge_add (rc->vm.conns, -1);
  }
}

void
rs_refused (struct rs_conn *rc, enum rs_refusal why)
{
  metric_inc (rc->srv->mx.refused[why]);
  metric_inc (rc->vm.refused[why]);
}
