//! How many consumers a group should run for its lag: the replica count KEDA's Kafka
//! scaler would choose, so a team can autoscale on the number Sluice prints and
//! exports.
//!
//! KEDA's scaler (`pkg/scalers/kafka_scaler.go`) reports the group's total lag as an
//! external metric with an `AverageValue` target of `lagThreshold`, so the
//! HorizontalPodAutoscaler asks for `ceil(total lag / lagThreshold)` replicas. Unless
//! `allowIdleConsumers` is set, it caps that at the partition count (a consumer beyond
//! it would own nothing); `limitToPartitionsWithLag` caps it at the partitions that have
//! lag instead. Scaling from and to zero is decided apart: the scaler is active while the
//! total lag is above `activationLagThreshold` (default 0), and an inactive scaler takes
//! the workload to zero replicas (KEDA's `minReplicaCount`, 0 by default).
//!
//! The one difference: KEDA caps the *metric* (`lag / threshold > partitions`, in
//! integer division), which can leave the HPA one replica above the partition count
//! when the lag is just over `partitions × threshold`; here the replica count itself
//! is capped, which is what the cap is for.

/// KEDA's Kafka trigger settings that decide the replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KedaScaling {
    /// `lagThreshold`: the lag one replica is expected to handle. Default 10; values
    /// below 1 are taken as 1.
    pub lag_threshold: i64,
    /// `activationLagThreshold`: at or below this total lag the scaler is inactive and
    /// the workload goes to zero. Default 0.
    pub activation_lag_threshold: i64,
    /// `allowIdleConsumers`: do not cap at the partition count. Default false.
    pub allow_idle_consumers: bool,
    /// `limitToPartitionsWithLag`: cap at the partitions with lag above 0 (applies
    /// even with `allow_idle_consumers`, as in KEDA). Default false.
    pub limit_to_partitions_with_lag: bool,
}

impl Default for KedaScaling {
    fn default() -> Self {
        KedaScaling {
            lag_threshold: 10,
            activation_lag_threshold: 0,
            allow_idle_consumers: false,
            limit_to_partitions_with_lag: false,
        }
    }
}

impl KedaScaling {
    /// The settings with `lagThreshold` = `threshold`.
    pub fn with_lag_threshold(threshold: i64) -> Self {
        KedaScaling {
            lag_threshold: threshold,
            ..KedaScaling::default()
        }
    }

    /// True when KEDA would keep the workload running (total lag above the activation
    /// threshold).
    pub fn is_active(&self, total_lag: i64) -> bool {
        total_lag > self.activation_lag_threshold
    }

    /// The replica count KEDA would settle on for these partition lags (one entry per
    /// partition of the group's topics, uncommitted ones included).
    pub fn replicas(&self, partition_lags: &[i64]) -> u64 {
        let total: i64 = partition_lags.iter().map(|l| (*l).max(0)).sum();
        if !self.is_active(total) {
            return 0;
        }
        let threshold = self.lag_threshold.max(1);
        // ceil(total / threshold), and at least one replica while active.
        let wanted = u64::try_from(total.div_euclid(threshold) + i64::from(total % threshold != 0))
            .unwrap_or(0)
            .max(1);
        let bound = if self.limit_to_partitions_with_lag {
            Some(partition_lags.iter().filter(|l| **l > 0).count())
        } else if !self.allow_idle_consumers {
            Some(partition_lags.len())
        } else {
            None
        };
        match bound {
            Some(b) => wanted.min(b as u64).max(1),
            None => wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_replica_per_threshold_rounded_up() {
        let k = KedaScaling::with_lag_threshold(100);
        assert_eq!(k.replicas(&[50, 50, 50, 50, 50, 50]), 3);
        assert_eq!(k.replicas(&[301, 0, 0, 0, 0, 0]), 4);
        assert_eq!(k.replicas(&[1, 0, 0]), 1);
    }

    #[test]
    fn capped_at_the_partition_count() {
        let k = KedaScaling::with_lag_threshold(10);
        assert_eq!(k.replicas(&[1000, 1000, 1000]), 3);
        // Just over partitions × threshold: still the partition count.
        assert_eq!(k.replicas(&[12, 12, 11]), 3);
    }

    #[test]
    fn idle_consumers_lift_the_cap() {
        let k = KedaScaling {
            allow_idle_consumers: true,
            ..KedaScaling::with_lag_threshold(10)
        };
        assert_eq!(k.replicas(&[1000, 1000, 1000]), 300);
    }

    #[test]
    fn limit_to_partitions_with_lag() {
        let k = KedaScaling {
            limit_to_partitions_with_lag: true,
            ..KedaScaling::with_lag_threshold(10)
        };
        assert_eq!(k.replicas(&[1000, 0, 0, 5]), 2);
        // It bounds even when idle consumers are allowed.
        let k = KedaScaling {
            allow_idle_consumers: true,
            ..k
        };
        assert_eq!(k.replicas(&[1000, 0, 0, 5]), 2);
    }

    #[test]
    fn at_or_below_the_activation_threshold_is_zero() {
        let k = KedaScaling::default();
        assert_eq!(k.replicas(&[0, 0]), 0);
        assert_eq!(k.replicas(&[]), 0);
        let k = KedaScaling {
            activation_lag_threshold: 50,
            ..KedaScaling::with_lag_threshold(10)
        };
        assert!(!k.is_active(50));
        assert_eq!(k.replicas(&[25, 25]), 0);
        assert!(k.is_active(51));
        assert_eq!(k.replicas(&[26, 25]), 2);
    }

    #[test]
    fn a_threshold_below_one_counts_as_one() {
        let k = KedaScaling::with_lag_threshold(0);
        assert_eq!(k.replicas(&[3, 4]), 2);
        assert_eq!(
            KedaScaling {
                allow_idle_consumers: true,
                ..k
            }
            .replicas(&[3, 4]),
            7
        );
    }
}
