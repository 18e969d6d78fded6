/* aws_config.h - credentials, region and endpoint, the way the AWS CLI
 * finds them.
 *
 * Environment first, then the shared files of the profile
 * (AWS_PROFILE, default "default"):
 *
 *   credentials  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN),
 *                else aws_access_key_id / aws_secret_access_key /
 *                aws_session_token from [NAME] of AWS_SHARED_CREDENTIALS_FILE
 *                (~/.aws/credentials), else from [profile NAME] (or
 *                [default]) of AWS_CONFIG_FILE (~/.aws/config)
 *   region       AWS_REGION, AWS_DEFAULT_REGION, region in the config
 *                file, else us-east-1
 *   endpoint     AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, endpoint_url in
 *                the config file (also in its "s3 =" sub-section), else
 *                none (AWS itself)
 *
 * A variable set to the empty string counts as unset.  Missing files are
 * fine; missing credentials are an error naming every place looked at.
 */
#ifndef REPVOL_AWS_CONFIG_H
#define REPVOL_AWS_CONFIG_H

#include <stddef.h>

struct error;                   /* core/util.h */

struct aws_config {
  char *profile;
  char *access_key_id;
  char *secret_access_key;
  char *session_token;          /* NULL: none */
  char *region;
  char *endpoint_url;           /* NULL: AWS's own endpoints */
  /* Where each came from, for messages ("environment", a file name). */
  char *credentials_from;
};

/* 0, or a negative errno with one line in err: -EINVAL when the
 * settings are missing or wrong, -ENOMEM, or why a file that exists
 * could not be read.  cfg is always safe to free.
 */
int aws_config_load (struct aws_config *cfg, struct error *err);
void aws_config_free (struct aws_config *cfg);

#endif
