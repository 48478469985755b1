//! The dispatcher: the [`Handler`] the server calls for every request. It
//! records the request, applies the fault plan, and routes to the admin
//! endpoints, the token endpoint, the managed-identity endpoints or Graph.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::admin::{self, AdminView};
use crate::batch::{self, ResponseOrder};
use crate::faults::{Effect, FaultPlan};
use crate::graph::Graph;
use crate::identity::{self, Identity};
use crate::log::RequestLog;
use crate::managed_identity::{self, ManagedIdentities};
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
    /// The managed-identity endpoints (IMDS, App Service, Azure Arc).
    pub(crate) managed: ManagedIdentities,
    /// Where the emulator is reachable.
    pub(crate) origin: Origin,
    /// Set when the emulator stops; ends injected delays early.
    pub(crate) stop: StopSignal,
    /// How many TCP connections the server accepted.
    pub(crate) connections: Arc<AtomicUsize>,
    /// How many of them ended.
    pub(crate) connections_closed: Arc<AtomicUsize>,
    /// Added to every recorded request received on the wire (a `$batch`
    /// envelope once, not per inner request).
    pub(crate) latency: Duration,
    /// The order of `$batch` responses.
    pub(crate) batch_order: ResponseOrder,
}

impl Handler for Dispatcher {
    /// Graph and token requests are recorded first, so the log holds a
    /// request before its response leaves, and then checked against the
    /// fault plan, so faulted attempts are in the log too. A `$batch`
    /// envelope goes the same way, and then each of its requests.
    fn handle(&self, req: &Request, ids: &RequestIds) -> Answer {
        let path = req.path();
        if admin::is_admin_path(path) {
            return Answer::Respond(admin::answer(&self.admin_view(), req, ids));
        }
        // Token requests have their own log, so Graph request counts do not
        // depend on how the client authenticates.
        let is_managed = managed_identity::is_endpoint_path(path);
        let is_token = is_managed || identity::is_token_path(path);
        if is_token {
            self.identity.log.record(req.to_recorded());
        } else {
            self.log.record(req.to_recorded());
        }
        if !self.latency.is_zero() && !self.stop.sleep(self.latency) {
            return Answer::Wire(WireFault::Close);
        }
        let after = match self.apply_fault(req, ids) {
            Picked::Answer(answer) => return answer,
            Picked::After(fault) => Some(fault),
            Picked::Handler => None,
        };
        let base = self.origin.url_for(req);
        let answer = if is_managed {
            Answer::Respond(self.managed.answer(&self.identity, req, ids))
        } else if is_token {
            Answer::Respond(identity::answer(&self.identity, req, ids, &base))
        } else if let Some(version) = batch::batch_version(path) {
            self.answer_batch(req, ids, version, &base)
        } else {
            Answer::Respond(self.graph.serve(req, ids, &base, &self.identity))
        };
        after.map_or(answer, Answer::Wire)
    }
}

/// What the fault plan makes of a request.
enum Picked {
    /// This answer instead of the handler's.
    Answer(Answer),
    /// The handler runs, then this instead of its answer.
    After(WireFault),
    /// The handler answers.
    Handler,
}

impl Dispatcher {
    /// What a fault does instead of the handler's answer, if one applies
    /// (a delay is waited out here, and then the handler answers).
    fn apply_fault(&self, req: &Request, ids: &RequestIds) -> Picked {
        let Some(fault) = self.faults.pick(req) else {
            return Picked::Handler;
        };
        match fault.effect(ids) {
            Effect::Respond(resp) => Picked::Answer(Answer::Respond(resp)),
            Effect::Wire(fault) => Picked::Answer(Answer::Wire(fault)),
            Effect::AfterHandler(fault) => Picked::After(fault),
            Effect::Delay(delay) if self.stop.sleep(delay) => Picked::Handler,
            Effect::Delay(_) => Picked::Answer(Answer::Wire(WireFault::Close)),
        }
    }

    /// A `$batch` envelope: authenticated like any Graph request, then each
    /// inner request recorded, faulted and served like a direct one.
    fn answer_batch(&self, req: &Request, ids: &RequestIds, version: &str, base: &str) -> Answer {
        if let Err(resp) = self.graph.authenticate(req, ids, &self.identity) {
            return Answer::Respond(resp);
        }
        batch::answer(req, ids, version, &self.batch_order, &mut |inner| {
            self.log.record(inner.recorded.clone());
            let after = match self.apply_fault(&inner.request, &inner.ids) {
                Picked::Answer(answer) => return answer,
                Picked::After(fault) => Some(fault),
                Picked::Handler => None,
            };
            let answer =
                Answer::Respond(
                    self.graph
                        .serve(&inner.request, &inner.ids, base, &self.identity),
                );
            after.map_or(answer, Answer::Wire)
        })
    }

    fn admin_view(&self) -> AdminView<'_> {
        AdminView {
            requests: &self.log,
            faults: &self.faults,
            identity: &self.identity,
            throttled: self.graph.throttled_count(),
            connections: self.connections.load(Ordering::SeqCst),
            connections_closed: self.connections_closed.load(Ordering::SeqCst),
        }
    }
}
