//! The index's side of an allocator answer: the Event it deserves, whether
//! the Service waits for a retry, and what its status should show.

use ferrolb_core::allocator::{self, AllocRequest, Assignment, Refusal, ServiceKey};

use super::service::{self, View};
use super::Index;

impl Index {
    /// Turns the answer of `allocate` for `key` (which held `before`) into
    /// Events and pending state; returns what the status should show.
    pub(super) fn settle(
        &mut self,
        key: &ServiceKey,
        svc: &View,
        request: &AllocRequest,
        before: Option<Assignment>,
        result: Result<Assignment, Refusal>,
    ) -> Option<Assignment> {
        let refusal = match result {
            Ok(assignment) => {
                self.pending.remove(key);
                // A request that could not be met was withdrawn: the same
                // request made again is warned about again.
                if self
                    .last_event
                    .get(key)
                    .is_some_and(|(reason, _)| *reason == service::REASON_REQUEST_NOT_SATISFIABLE)
                {
                    self.last_event.remove(key);
                }
                if before.as_ref() != Some(&assignment) {
                    self.retry_pending |= before.is_some();
                    let advertised = self.pool_advertised(&assignment.pool);
                    let note = service::allocated_note(&assignment, advertised);
                    self.emit_service_event(key, svc, false, service::REASON_IP_ALLOCATED, note);
                }
                return Some(assignment);
            }
            Err(refusal) => refusal,
        };
        // Retried whenever addresses free up, pools change or a holder's
        // sharing terms change.
        self.pending.insert(key.clone());
        let err = allocator::Error::from(refusal.error.clone());
        let (reason, note) = match &refusal.kept {
            // What it holds is still legal: it stays until the request can
            // be met.
            Some(kept) => (
                service::REASON_REQUEST_NOT_SATISFIABLE,
                service::not_satisfiable_note(key, request, &refusal.error, kept),
            ),
            None => {
                self.retry_pending |= before.is_some();
                (
                    service::REASON_ALLOCATION_FAILED,
                    service::failed_note(key, &err),
                )
            }
        };
        if self.emit_service_event(key, svc, true, reason, note) {
            if let Some(kept) = &refusal.kept {
                tracing::info!(
                    service = %key,
                    reason = err.reason(),
                    pool = %kept.pool,
                    "request cannot be met; keeping the current IPs"
                );
            }
            self.failures.push(err.reason());
        }
        refusal.kept.map(|kept| *kept)
    }
}
