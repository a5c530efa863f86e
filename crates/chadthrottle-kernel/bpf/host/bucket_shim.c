// SPDX-License-Identifier: MIT
/* The datapath's bucket arithmetic (include/bucket.h), compiled for the host so that the
 * kernel crate's tests can compare it with the Rust model step by step. */
#include "bucket.h"

int ct_host_bucket_admit(struct ct_bucket *bucket, __u64 now_ns, __u64 len, __u64 slack_ns)
{
	return ct_bucket_admit(bucket, now_ns, len, slack_ns);
}
