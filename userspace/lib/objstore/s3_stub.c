/* s3_stub.c - stands in for s3.c until the S3 backend is merged, so that
 * objstore.c links.  The Makefile leaves this file out as soon as s3.c
 * exists; delete it then.
 */
#include <stdio.h>

#include "objstore/objstore.h"

static int
s3_stub_open (struct objstore *os, const char *rest, char *err,
              size_t errlen)
{
  snprintf (err, errlen, "%s: the s3 backend is not built in yet", os->url);
  return -1;
}

const struct objstore_ops s3_objstore_ops = {
  .scheme = "s3",
  .open = s3_stub_open,
};
