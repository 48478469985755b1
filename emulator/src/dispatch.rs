//! The dispatcher: the [`Handler`] the server calls for every request. It
//! records the request, applies the fault plan, and routes to the admin
//! endpoints, the token endpoint or Graph.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::admin::{self, AdminView};
use crate::faults::{Effect, FaultPlan};
use crate::graph::Graph;
use crate::identity::{self, Identity};
use crate::log::RequestLog;
use crate::message::{Origin, Request, RequestIds};
use crate::server::{Answer, Handler, WireFault};
use crate::sync::StopSignal;

/// Every piece of state a request can reach, each owned by its module.
pub(crate) struct Dispatcher {
    /// Every Graph request received.
    pub(crate) log: RequestLog,
    /// Fault rules, consulted for every recorded request.
    pub(crate) faults: FaultPlan,
    /// Graph: token, data, write throttle.
    pub(crate) graph: Graph,
    /// The token endpoint: apps, issued tokens, its own log.
    pub(crate) identity: Identity,
    /// Where the emulator is reachable.
    pub(crate) origin: Origin,
    /// Set when the emulator stops; ends injected delays early.
    pub(crate) stop: StopSignal,
    /// How many TCP connections the server accepted.
    pub(crate) connections: Arc<AtomicUsize>,
}

impl Handler for Dispatcher {
    /// Graph and token requests are recorded first, so the log holds a
    /// request before its response leaves, and then checked against the
    /// fault plan, so faulted attempts are in the log too.
    fn handle(&self, req: &Request, ids: &RequestIds) -> Answer {
        let path = req.path();
        if admin::is_admin_path(path) {
            return Answer::Respond(admin::answer(&self.admin_view(), req, ids));
        }
        // Token requests have their own log, so Graph request counts do not
        // depend on how the client authenticates.
        let is_token = identity::is_token_path(path);
        if is_token {
            self.identity.log.record(req.to_recorded());
        } else {
            self.log.record(req.to_recorded());
        }
        if let Some(answer) = self.apply_fault(req, ids) {
            return answer;
        }
        let base = self.origin.url_for(req);
        Answer::Respond(if is_token {
            identity::answer(&self.identity, req, ids, &base)
        } else {
            self.graph.serve(req, ids, &base, &self.identity)
        })
    }
}

impl Dispatcher {
    /// The answer a fault gives in place of the handler's, if one applies
    /// (a delay is waited out here, and then the handler answers).
    fn apply_fault(&self, req: &Request, ids: &RequestIds) -> Option<Answer> {
        match self.faults.pick(req)?.effect(ids) {
            Effect::Respond(resp) => Some(Answer::Respond(resp)),
            Effect::Wire(fault) => Some(Answer::Wire(fault)),
            Effect::Delay(delay) if self.stop.sleep(delay) => None,
            Effect::Delay(_) => Some(Answer::Wire(WireFault::Close)),
        }
    }

    fn admin_view(&self) -> AdminView<'_> {
        AdminView {
            requests: &self.log,
            faults: &self.faults,
            identity: &self.identity,
            throttled: self.graph.throttled_count(),
            connections: self.connections.load(Ordering::SeqCst),
        }
    }
}
