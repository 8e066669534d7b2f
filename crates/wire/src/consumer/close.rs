//! Closing the consumer: the last auto-commit, the revoke callback, and leaving the
//! group.

use std::sync::Arc;

use tracing::warn;

use super::group::listener::{RebalanceContext, RebalanceListener};
use super::state::Shared;
use super::{group, offsets};
use crate::error::Result;

/// Closes the consumer once its group task has stopped: commits the positions if
/// `enable.auto.commit`, tells the listener the partitions are revoked, and leaves the
/// group (a static member does not leave: restarting within the session timeout keeps
/// its partitions without a rebalance).
pub(super) async fn close(
    shared: &Arc<Shared>,
    listener: Option<&Arc<dyn RebalanceListener>>,
) -> Result<()> {
    let owned: Vec<_> = shared.lock().assignment.keys().cloned().collect();
    let mut result = Ok(());
    let (subscribed, member_id, generation) = {
        let s = shared.lock();
        (
            s.subscription.is_some(),
            s.membership.member_id.clone(),
            s.membership.generation,
        )
    };
    if shared.config.enable_auto_commit
        && shared.coordinator.is_some()
        && (!subscribed || generation >= 0)
    {
        if let Err(e) = offsets::commit(shared, &group::positions(shared, &owned)).await {
            warn!(error = %e, "commit on close failed");
            result = Err(e);
        }
    }
    if let (true, Some(coordinator)) = (subscribed, &shared.coordinator) {
        if generation >= 0 {
            if let Some(l) = listener {
                let ctx = RebalanceContext {
                    shared: Arc::clone(shared),
                };
                l.on_partitions_revoked(&ctx, &owned).await;
            }
        }
        // The group task may have left a JoinGroup unanswered on the old connection.
        coordinator.reset(crate::cluster::coordinator::Lane::Membership);
        if let Err(e) = group::leave(shared, coordinator, &member_id).await {
            warn!(error = %e, "LeaveGroup on close failed");
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}
