//! The shell around the engine: one flow tick in, the conversation's run moved by one node.
//!
//! Order of work, and why:
//! 1. Read the conversation (human takeover, window), its flow state, the contact.
//! 2. Step the run with the pure engine.
//! 3. Apply the step's effects. Each is idempotent on its own: a send is the job
//!    `flow-{run}-{step}` (accepting it again is harmless, and the sender sends a job once),
//!    tags and fields are set, not toggled.
//! 4. Store the new state and the history line together, conditional on the state read.
//!    A tick delivered twice finds the state moved and changes nothing.
//! 5. Arm what comes next (a step tick, a wake-up). If that is lost after step 4, a redelivered
//!    tick sees the run already past it and arms it again.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::definition::Definition;
use super::engine::{self, ContactFacts, Event, Facts, Run, RunState, Stale, Stepped, Then};
use super::timers::{FlowTimers, TimerError};
use super::trigger::{Candidate, Incoming, Stimulus, choose};
use crate::clock::SharedClock;
use crate::contacts::Tag;
use crate::domain::{Channel, MessageId, Origin, RunId, SendJob};
use crate::outbound::accept::{AcceptError, accept_send};
use crate::queues::{FlowConversation, FlowTick, QueueError, Queues};
use crate::store::automations::Automation;
use crate::store::conversation_flows::{ConversationFlow, HistoryEntry};
use crate::store::conversations::HandoffBy;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Timer(#[from] TimerError),
    #[error(transparent)]
    Accept(#[from] AcceptError),
    #[error("the conversation's flow state changed while this tick ran; the tick is retried")]
    Raced,
}

/// What a tick did (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    /// A run started and ran its first node.
    Started { run_id: RunId, automation: String },
    /// The run moved one node.
    Stepped { run_id: RunId, node: String },
    /// The run stopped from outside its graph.
    Stopped { run_id: RunId, reason: String },
    /// Nothing to do, and why.
    Nothing(&'static str),
}

pub struct FlowRunner {
    store: Store,
    queues: Queues,
    timers: FlowTimers,
    clock: SharedClock,
}

/// What stepping needs to know about the conversation, read once per tick.
struct Scene {
    conversation: FlowConversation,
    handoff: bool,
    last_inbound_at: Option<DateTime<Utc>>,
}

/// The run id for a run started by `cause`: the same on every redelivery, so the start's
/// effects (the job `flow-{run}-0`) are the same too.
fn run_id_for(conversation: &FlowConversation, cause: &str) -> RunId {
    let hash = hex::encode(Sha256::digest(format!("{}/{}/{cause}", conversation.workspace_id, conversation.id())));
    RunId::parse(format!("run_{}", &hash[..24])).expect("hex is a valid id")
}

impl FlowRunner {
    pub fn new(store: Store, queues: Queues, timers: FlowTimers, clock: SharedClock) -> Self {
        Self { store, queues, timers, clock }
    }

    pub fn timers(&self) -> &FlowTimers {
        &self.timers
    }

    /// Moves a wake-up from the timer queue onto the conversation's FIFO group.
    pub async fn forward(&self, tick: &FlowTick) -> Result<(), FlowError> {
        Ok(self.queues.emit_flow_tick(tick).await?)
    }

    pub async fn tick(&self, tick: FlowTick) -> Result<TickOutcome, FlowError> {
        let conversation = tick.conversation().clone();
        let ws = conversation.workspace_id.clone();
        let conversation_id = conversation.id();
        let stored = self.store.conversation(&ws, &conversation_id).await?;
        let scene = Scene {
            handoff: stored.as_ref().is_some_and(|c| c.human_handoff),
            last_inbound_at: stored.as_ref().map(|c| c.last_inbound_at),
            conversation,
        };
        let mut flow = self.store.conversation_flow(&ws, &conversation_id).await?;
        match tick {
            FlowTick::Inbound { message_id, .. } => self.on_message(&scene, flow, &message_id).await,
            FlowTick::TagAdded { tag, event_id, .. } => {
                let event = format!("tag:{event_id}");
                if flow.has_handled(&event) {
                    return Ok(TickOutcome::Nothing("this tag event was handled before"));
                }
                if scene.handoff {
                    return Ok(TickOutcome::Nothing("a human has the conversation"));
                }
                if flow.run.is_some() {
                    return Ok(TickOutcome::Nothing("a run is already active in the conversation"));
                }
                flow.mark_handled(&event);
                let started_by = format!("tag {tag} added");
                self.start(&scene, flow, &Stimulus::TagAdded(tag), &event, started_by, None).await
            }
            FlowTick::Step { run_id, step, .. } => {
                let Some(run) = flow.run.clone().filter(|r| r.run_id == run_id) else {
                    return Ok(TickOutcome::Nothing("the run is over"));
                };
                if run.step != step || run.state != RunState::Ready {
                    // Delivered again after it was done: make sure what it armed exists.
                    if run.step > step {
                        self.arm(&scene.conversation, &run).await?;
                    }
                    return Ok(TickOutcome::Nothing("a step tick for a step already run"));
                }
                self.advance(&scene, flow, Event::Step, None).await
            }
            FlowTick::Wake { run_id, step, .. } => {
                let Some(run) = flow.run.clone().filter(|r| r.run_id == run_id) else {
                    return Ok(TickOutcome::Nothing("a stale wake-up: the run is over"));
                };
                if run.step != step {
                    // Delivered again after it was handled: make sure what it armed exists.
                    if run.step > step {
                        self.arm(&scene.conversation, &run).await?;
                    }
                    return Ok(TickOutcome::Nothing("a stale wake-up: the run moved on"));
                }
                let until = match run.state {
                    RunState::WaitingForReply { until } | RunState::Delayed { until } => until,
                    RunState::Ready => return Ok(TickOutcome::Nothing("a stale wake-up: the run moved on")),
                };
                if self.clock.now() < until {
                    // Early (a clock between us and the timer disagreed): arm it again.
                    self.arm(&scene.conversation, &run).await?;
                    return Ok(TickOutcome::Nothing("an early wake-up, armed again"));
                }
                self.advance(&scene, flow, Event::Wake, None).await
            }
        }
    }

    async fn on_message(
        &self,
        scene: &Scene,
        mut flow: ConversationFlow,
        message_id: &MessageId,
    ) -> Result<TickOutcome, FlowError> {
        let ws = &scene.conversation.workspace_id;
        if flow.has_handled(message_id) {
            if let Some(run) = &flow.run {
                self.arm(&scene.conversation, run).await?;
            }
            return Ok(TickOutcome::Nothing("this message was handled before"));
        }
        let Some(stored) = self.store.message(ws, message_id).await? else {
            return Ok(TickOutcome::Nothing("the message is not stored"));
        };
        let incoming = Incoming::of(&stored.message.content);
        flow.mark_handled(message_id);
        match &flow.run {
            Some(_) if scene.handoff => self.advance(scene, flow, Event::Step, None).await,
            Some(run) if matches!(run.state, RunState::WaitingForReply { .. }) => {
                self.advance(scene, flow, Event::Reply(incoming.as_reply()), None).await
            }
            // One active run per conversation: a message while the run is between nodes is
            // kept for its next waitForReply; during a delay it answers nothing. Neither
            // starts a second run.
            Some(run) if run.state == RunState::Ready => {
                let mut run = run.clone();
                run.pending = Some(incoming.as_reply());
                flow.run = Some(run);
                let conversation_id = scene.conversation.id();
                if !self.store.save_conversation_flow(ws, &conversation_id, &flow, &[]).await? {
                    return Err(FlowError::Raced);
                }
                Ok(TickOutcome::Nothing("the run is between nodes; the message waits for its next question"))
            }
            Some(_) => Ok(TickOutcome::Nothing("the run is in a delay; the message answers nothing")),
            None if scene.handoff => Ok(TickOutcome::Nothing("a human has the conversation")),
            None => {
                let started_by = format!("message {message_id}");
                let reply = Some(incoming.as_reply());
                self.start(scene, flow, &Stimulus::Message(incoming), message_id, started_by, reply).await
            }
        }
    }

    /// Starts the automation the stimulus triggers, if any, and runs its first node.
    async fn start(
        &self,
        scene: &Scene,
        mut flow: ConversationFlow,
        stimulus: &Stimulus,
        cause: &str,
        started_by: String,
        reply: Option<engine::Reply>,
    ) -> Result<TickOutcome, FlowError> {
        let ws = &scene.conversation.workspace_id;
        let automations: Vec<Automation> =
            self.store.automations(ws).await?.into_iter().filter(|a| a.enabled).collect();
        let candidates: Vec<Candidate<'_>> = automations
            .iter()
            .map(|a| Candidate {
                automation_id: &a.automation_id,
                priority: a.definition.priority,
                created_at: a.created_at,
                trigger: &a.definition.trigger,
            })
            .collect();
        let Some(chosen) = choose(&candidates, scene.conversation.channel, stimulus) else {
            return Ok(TickOutcome::Nothing("no enabled automation's trigger matches"));
        };
        let automation =
            automations.iter().find(|a| &a.automation_id == chosen.automation_id).expect("chosen from these");
        let now = self.clock.now();
        let run = Run {
            run_id: run_id_for(&scene.conversation, cause),
            automation_id: automation.automation_id.clone(),
            version: automation.version,
            started_at: now,
            step: 0,
            at: automation.definition.start.clone(),
            state: RunState::Ready,
            reply,
            pending: None,
        };
        flow.run = Some(run.clone());
        let contact = self.contact_facts(&scene.conversation).await?;
        let facts = Facts {
            channel: scene.conversation.channel,
            now,
            last_inbound_at: scene.last_inbound_at,
            contact: &contact,
        };
        let stepped = match engine::step(&automation.definition, &run, Event::Step, &facts) {
            Ok(stepped) => stepped,
            Err(stale) => engine::stop(&run, stale.to_string()),
        };
        self.commit(scene, flow, &run, stepped, &automation.definition.name, Some(started_by)).await?;
        Ok(TickOutcome::Started { run_id: run.run_id, automation: automation.definition.name.clone() })
    }

    /// Moves the active run by one tick, or stops it when it may no longer run.
    async fn advance(
        &self,
        scene: &Scene,
        flow: ConversationFlow,
        event: Event,
        started_by: Option<String>,
    ) -> Result<TickOutcome, FlowError> {
        let run = flow.run.clone().expect("advance is called with an active run");
        let ws = &scene.conversation.workspace_id;
        let head = self.store.automation(ws, &run.automation_id).await?;
        let name = head.as_ref().map_or_else(|| run.automation_id.to_string(), |a| a.definition.name.clone());
        let definition: Option<Definition> = match &head {
            Some(a) if a.version == run.version => Some(a.definition.clone()),
            Some(_) => self.store.automation_version(ws, &run.automation_id, run.version).await?,
            None => None,
        };
        // FAQ "An agent replied and the bot went silent": a human's conversation stops the run.
        let stop_reason = if scene.handoff {
            Some("a human took over the conversation (humanHandoff is on)".to_owned())
        } else if head.is_none() || definition.is_none() {
            Some("the automation was deleted".to_owned())
        } else if head.as_ref().is_some_and(|a| !a.enabled) {
            Some("the automation was disabled".to_owned())
        } else {
            None
        };
        let stepped = match (stop_reason, definition) {
            (Some(reason), _) => engine::stop(&run, reason),
            (None, None) => engine::stop(&run, "the automation was deleted"),
            (None, Some(definition)) => {
                let contact = self.contact_facts(&scene.conversation).await?;
                let facts = Facts {
                    channel: scene.conversation.channel,
                    now: self.clock.now(),
                    last_inbound_at: scene.last_inbound_at,
                    contact: &contact,
                };
                match engine::step(&definition, &run, event, &facts) {
                    Ok(stepped) => stepped,
                    Err(Stale::UnknownNode(node)) => engine::stop(&run, Stale::UnknownNode(node).to_string()),
                    Err(_) => return Ok(TickOutcome::Nothing("the tick does not fit the run's state")),
                }
            }
        };
        let outcome = match &stepped.record.outcome {
            engine::Outcome::Stopped { reason } => {
                TickOutcome::Stopped { run_id: run.run_id.clone(), reason: reason.clone() }
            }
            _ => TickOutcome::Stepped { run_id: run.run_id.clone(), node: stepped.record.node.to_string() },
        };
        self.commit(scene, flow, &run, stepped, &name, started_by).await?;
        Ok(outcome)
    }

    async fn commit(
        &self,
        scene: &Scene,
        mut flow: ConversationFlow,
        run: &Run,
        stepped: Stepped,
        automation_name: &str,
        started_by: Option<String>,
    ) -> Result<(), FlowError> {
        let conversation = &scene.conversation;
        let ws = &conversation.workspace_id;
        let now = self.clock.now();
        for effect in &stepped.effects {
            self.apply(conversation, run, effect, now).await?;
        }
        let entry = HistoryEntry {
            run_id: run.run_id.clone(),
            automation_id: run.automation_id.clone(),
            automation_name: automation_name.to_owned(),
            run_started_at: run.started_at,
            at: now,
            started_by,
            record: stepped.record.clone(),
        };
        flow.run = stepped.run.clone();
        if !self.store.save_conversation_flow(ws, &conversation.id(), &flow, &[entry]).await? {
            return Err(FlowError::Raced);
        }
        tracing::info!(
            workspace = %ws, run = %run.run_id, step = run.step, node = %stepped.record.node,
            node_type = %stepped.record.node_type, "flow step"
        );
        match (stepped.then, &stepped.run) {
            (Then::Step | Then::WakeAt(_), Some(next)) => self.arm(conversation, next).await,
            _ => Ok(()),
        }
    }

    /// Arms what the run waits for: a step tick when it is ready, a wake-up when it is parked.
    async fn arm(&self, conversation: &FlowConversation, run: &Run) -> Result<(), FlowError> {
        let (conversation, run_id, step) = (conversation.clone(), run.run_id.clone(), run.step);
        match run.state {
            RunState::Ready => self.queues.emit_flow_tick(&FlowTick::Step { conversation, run_id, step }).await?,
            RunState::WaitingForReply { until } | RunState::Delayed { until } => {
                let wake = FlowTick::Wake { conversation, run_id, step };
                self.timers.wake_at(&wake, until, self.clock.now()).await?;
            }
        }
        Ok(())
    }

    async fn apply(
        &self,
        conversation: &FlowConversation,
        run: &Run,
        effect: &engine::Effect,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        let ws = &conversation.workspace_id;
        let (channel, contact) = (conversation.channel, conversation.contact_id.as_str());
        match effect {
            engine::Effect::Send { job_id, content } => {
                let job = SendJob {
                    job_id: job_id.clone(),
                    workspace_id: ws.clone(),
                    channel,
                    account_id: conversation.account_id.clone(),
                    to: conversation.contact_id.clone(),
                    origin: Origin::Flow { run_id: run.run_id.to_string(), step: run.step.to_string() },
                    content: content.clone(),
                };
                match accept_send(&self.store, &self.queues, &job, now).await {
                    // The same step accepted before, with the contact's fields as they were
                    // then: that send is the step's send.
                    Ok(_) | Err(AcceptError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            engine::Effect::AddTag { tag } => {
                self.store.add_contact_tag(ws, channel, contact, tag).await?;
            }
            engine::Effect::RemoveTag { tag } => {
                if let Ok(tag) = Tag::parse(tag) {
                    self.store.remove_contact_tag(ws, channel, contact, &tag).await?;
                }
            }
            engine::Effect::SetField { name, value } => {
                self.store.set_contact_field(ws, channel, contact, name, value).await?;
            }
            engine::Effect::Handoff => {
                self.store.set_handoff(ws, &conversation.id(), true, HandoffBy::Flow).await?;
            }
        }
        Ok(())
    }

    async fn contact_facts(&self, conversation: &FlowConversation) -> Result<ContactFacts, FlowError> {
        let ws = &conversation.workspace_id;
        let record = self.store.contact_record(ws, conversation.channel, &conversation.contact_id).await?;
        let phone = (conversation.channel == Channel::WhatsApp).then(|| conversation.contact_id.to_string());
        Ok(match record {
            Some(c) => ContactFacts { name: c.profile_name, phone, tags: c.tags, fields: c.fields },
            None => ContactFacts { phone, ..ContactFacts::default() },
        })
    }
}
