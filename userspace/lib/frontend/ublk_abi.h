/* ublk_abi.h - the parts of the ublk kernel ABI that Debian 12's
 * linux-libc-dev (6.1 headers) lacks, for building against old headers
 * while running on newer kernels.
 *
 * Since Linux 6.3 ublk commands are ioctl-encoded (_IOWR ('u', nr, ...));
 * the bare numbers in <linux/ublk_cmd.h> are the legacy encoding, which
 * kernels built without CONFIG_BLKDEV_UBLK_LEGACY_OPCODES refuse.  Every
 * definition here is guarded, so newer headers win where they exist.
 */
#ifndef REPVOL_UBLK_ABI_H
#define REPVOL_UBLK_ABI_H

#include <sys/ioctl.h>
#include <linux/ublk_cmd.h>

#ifndef UBLK_U_CMD_GET_DEV_INFO
#define UBLK_U_CMD_GET_DEV_INFO \
  _IOR ('u', UBLK_CMD_GET_DEV_INFO, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_ADD_DEV \
  _IOWR ('u', UBLK_CMD_ADD_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_DEL_DEV \
  _IOWR ('u', UBLK_CMD_DEL_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_START_DEV \
  _IOWR ('u', UBLK_CMD_START_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_STOP_DEV \
  _IOWR ('u', UBLK_CMD_STOP_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_SET_PARAMS \
  _IOWR ('u', UBLK_CMD_SET_PARAMS, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_GET_PARAMS \
  _IOR ('u', UBLK_CMD_GET_PARAMS, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_START_USER_RECOVERY \
  _IOWR ('u', UBLK_CMD_START_USER_RECOVERY, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_END_USER_RECOVERY \
  _IOWR ('u', UBLK_CMD_END_USER_RECOVERY, struct ublksrv_ctrl_cmd)
#endif

/* Linux 6.5+: which UBLK_F_* the driver knows, as a u64 at addr. */
#ifndef UBLK_U_CMD_GET_FEATURES
#define UBLK_U_CMD_GET_FEATURES _IOR ('u', 0x13, struct ublksrv_ctrl_cmd)
#endif
#ifndef UBLK_FEATURES_LEN
#define UBLK_FEATURES_LEN 8
#endif

#ifndef UBLK_U_IO_FETCH_REQ
#define UBLK_U_IO_FETCH_REQ \
  _IOWR ('u', UBLK_IO_FETCH_REQ, struct ublksrv_io_cmd)
#define UBLK_U_IO_COMMIT_AND_FETCH_REQ \
  _IOWR ('u', UBLK_IO_COMMIT_AND_FETCH_REQ, struct ublksrv_io_cmd)
#endif

#ifndef UBLK_F_CMD_IOCTL_ENCODE
#define UBLK_F_CMD_IOCTL_ENCODE (1ULL << 6)
#endif

/* Bytes of descriptors the driver reserves per queue in the mmap of
 * /dev/ublkcN: queue q's array starts at q times this.
 */
#define UBLK_QUEUE_DESC_STRIDE(pagesz) \
  (((UBLK_MAX_QUEUE_DEPTH * sizeof (struct ublksrv_io_desc)) + (pagesz) - 1) \
   / (pagesz) * (pagesz))

#endif
