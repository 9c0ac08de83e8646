//! The step function: `(definition, run, event, facts) → (run, effects, record, what next)`.
//! Pure — no clock, no I/O — so every rule of a run is a unit test. The shell around it
//! ([`super::runner`]) loads the facts, applies the effects idempotently and stores the result.
//!
//! One tick runs one node. A run is always *at* a node: `Ready` runs it on the next step tick;
//! `WaitingForReply` and `Delayed` are parked at a wait until the customer writes or the wake-up
//! fires. A wake-up or a step tick names the step it was made for, so a stale one (the run
//! moved on: the customer answered before the timeout) changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::definition::{Action, Definition, Test, TextTest};
use crate::domain::{AutomationId, Channel, NodeId, RunId, SendJobId};
use crate::outbound::content::OutboundContent;
use crate::policy::send::{Refusal, automation_may_send};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: RunId,
    pub automation_id: AutomationId,
    /// The automation's version the run follows (editing an automation never breaks a run).
    pub version: u32,
    pub started_at: DateTime<Utc>,
    /// Ticks done so far; a tick names the step it expects.
    pub step: u32,
    /// The node the run is at.
    pub at: NodeId,
    pub state: RunState,
    /// The customer's latest reply in this run (conditions and `{{reply}}` read it).
    #[serde(default)]
    pub reply: Option<Reply>,
    /// A message that came while the run was between nodes: the answer to the next
    /// `waitForReply` (a customer who types while the bot is still talking is not ignored).
    #[serde(default)]
    pub pending: Option<Reply>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    /// The node `at` runs on the next step tick.
    Ready,
    /// Parked at the `waitForReply` node `at` until the customer writes or `until` passes.
    WaitingForReply { until: DateTime<Utc> },
    /// Parked at the `delay` node `at` until `until`.
    Delayed { until: DateTime<Utc> },
}

/// What the customer wrote, as conditions see it: the text, and the id of a tapped button.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
}

impl Reply {
    /// The reply as one piece of text (`{{reply}}`): the typed text, or the tapped button's.
    pub fn as_text(&self) -> Option<&str> {
        self.text.as_deref().or(self.payload.as_deref())
    }
}

/// The contact as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFacts {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub tags: BTreeSet<String>,
    pub fields: BTreeMap<String, String>,
}

/// Everything a step looks at besides the run and the definition, read at the tick.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub channel: Channel,
    pub now: DateTime<Utc>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub contact: &'a ContactFacts,
}

/// What woke the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Run the node the run is at (a step tick, or the tick that started the run).
    Step,
    /// The customer wrote.
    Reply(Reply),
    /// A wait's timeout or a delay's end.
    Wake,
}

/// A change to the world a step asks for; the runner applies each idempotently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    Send { job_id: SendJobId, content: OutboundContent },
    AddTag { tag: String },
    RemoveTag { tag: String },
    SetField { name: String, value: String },
    Handoff,
}

/// What the run does after this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Another step tick now.
    Step,
    /// A wake-up at this time (a wait's timeout, a delay's end).
    WakeAt(DateTime<Utc>),
    /// Nothing: the run ended, or waits for the customer with nothing scheduled.
    Nothing,
}

/// One line of a run's history: what the tick did at which node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u32,
    pub node: NodeId,
    pub node_type: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Sent {
        job_id: SendJobId,
        kind: String,
    },
    /// A send node that did not send, and why; the run went on.
    Skipped {
        reason: String,
    },
    Waiting {
        until: DateTime<Utc>,
    },
    Replied {
        reply: Option<String>,
    },
    TimedOut,
    Delayed {
        until: DateTime<Utc>,
    },
    Resumed,
    Branched {
        rule: Option<usize>,
        to: NodeId,
    },
    Tagged {
        tag: String,
    },
    Untagged {
        tag: String,
    },
    FieldSet {
        name: String,
        value: String,
    },
    HandedOff,
    Ended,
    /// The run was stopped from outside the graph (a human took over, the automation went away).
    Stopped {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stepped {
    /// `None`: the run ended.
    pub run: Option<Run>,
    pub effects: Vec<Effect>,
    pub record: StepRecord,
    pub then: Then,
}

/// The send job of a run's step: the same on every redelivery, so the sender's exactly-once
/// path applies.
pub fn job_id(run: &RunId, step: u32) -> SendJobId {
    SendJobId::parse(format!("flow-{run}-{step}")).expect("run ids are valid key parts")
}

/// Why an event did not fit the run (the runner treats it as stale and changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("the run is not ready for a step")]
    NotReady,
    #[error("the run is not waiting for a reply")]
    NotWaiting,
    #[error("the run is not parked at a wait")]
    NotParked,
    #[error("the run is at node `{0}`, which its automation no longer has")]
    UnknownNode(NodeId),
}

/// Stops a run from outside its graph, recording why.
pub fn stop(run: &Run, reason: impl Into<String>) -> Stepped {
    let kind = "stop".to_owned();
    Stepped {
        run: None,
        effects: Vec::new(),
        record: StepRecord {
            step: run.step,
            node: run.at.clone(),
            node_type: kind,
            outcome: Outcome::Stopped { reason: reason.into() },
        },
        then: Then::Nothing,
    }
}

/// Runs one tick of `run` for `event`.
pub fn step(definition: &Definition, run: &Run, event: Event, facts: &Facts<'_>) -> Result<Stepped, Stale> {
    let node = definition.node(&run.at).ok_or_else(|| Stale::UnknownNode(run.at.clone()))?;
    let record = |outcome| StepRecord {
        step: run.step,
        node: node.id.clone(),
        node_type: node.action.kind().to_owned(),
        outcome,
    };
    let mut next_run = run.clone();
    next_run.step += 1;
    // Moves on to `next` (or ends the run when there is none) and asks for a step tick.
    let advance = |mut next_run: Run, next: Option<&NodeId>, effects: Vec<Effect>, outcome: Outcome| match next {
        Some(next) => {
            next_run.at = next.clone();
            next_run.state = RunState::Ready;
            Stepped { run: Some(next_run), effects, record: record(outcome), then: Then::Step }
        }
        None => Stepped { run: None, effects, record: record(outcome), then: Then::Nothing },
    };

    match (&run.state, event) {
        (RunState::WaitingForReply { .. }, Event::Reply(reply)) => {
            let Action::WaitForReply { next, .. } = &node.action else { return Err(Stale::NotWaiting) };
            let shown = reply.as_text().map(str::to_owned);
            next_run.reply = Some(reply);
            Ok(advance(next_run, Some(next), Vec::new(), Outcome::Replied { reply: shown }))
        }
        (RunState::WaitingForReply { until }, Event::Wake) if facts.now >= *until => {
            let Action::WaitForReply { on_timeout, .. } = &node.action else { return Err(Stale::NotParked) };
            Ok(advance(next_run, on_timeout.as_ref(), Vec::new(), Outcome::TimedOut))
        }
        (RunState::Delayed { until }, Event::Wake) if facts.now >= *until => {
            let Action::Delay { next, .. } = &node.action else { return Err(Stale::NotParked) };
            Ok(advance(next_run, next.as_ref(), Vec::new(), Outcome::Resumed))
        }
        // A wake-up that came early (a clock skew between Scheduler and us) or for a run that
        // is not parked: not this run's moment.
        (_, Event::Wake) => Err(Stale::NotParked),
        (RunState::Ready, Event::Step) => Ok(run_node(definition, run, next_run, facts, &advance, &record)),
        (_, Event::Step) => Err(Stale::NotReady),
        (_, Event::Reply(_)) => Err(Stale::NotWaiting),
    }
}

type Advance<'f> = dyn Fn(Run, Option<&NodeId>, Vec<Effect>, Outcome) -> Stepped + 'f;

fn run_node(
    definition: &Definition,
    run: &Run,
    mut next_run: Run,
    facts: &Facts<'_>,
    advance: &Advance<'_>,
    record: &dyn Fn(Outcome) -> StepRecord,
) -> Stepped {
    let node = definition.node(&run.at).expect("checked by step");
    let field = |name: &str| field_value(name, run, facts.contact);
    let send = |content: OutboundContent, next: &Option<NodeId>, next_run: Run| {
        let kind = content.kind();
        match automation_may_send(facts.channel, kind, &facts.contact.tags, facts.last_inbound_at, facts.now) {
            Ok(()) => {
                let job_id = job_id(&run.run_id, run.step);
                let outcome = Outcome::Sent { job_id: job_id.clone(), kind: node.action.kind().to_owned() };
                advance(next_run, next.as_ref(), vec![Effect::Send { job_id, content }], outcome)
            }
            Err(refusal) => {
                advance(next_run, next.as_ref(), Vec::new(), Outcome::Skipped { reason: skip_reason(&refusal) })
            }
        }
    };
    match &node.action {
        Action::SendMessage { text, media, next } => {
            let content = match (text, media) {
                (Some(text), _) => OutboundContent::Text { body: text.render(field), preview_url: false },
                (None, Some(media)) => OutboundContent::Media {
                    kind: media.kind.clone(),
                    id: media.id.clone(),
                    link: media.link.clone(),
                    caption: media.caption.as_ref().map(|c| c.render(field)),
                    filename: None,
                },
                (None, None) => unreachable!("validated: text or media"),
            };
            send(content, next, next_run)
        }
        Action::SendInteractive { body, buttons, list, next } => {
            let body = body.render(field);
            let content = match list {
                Some(list) => {
                    OutboundContent::List { body, button: list.button.clone(), sections: list.sections.clone() }
                }
                None => OutboundContent::Buttons { body, buttons: buttons.clone() },
            };
            send(content, next, next_run)
        }
        Action::SendTemplate { name, language, components, next } => send(
            OutboundContent::Template {
                name: name.clone(),
                language: language.clone(),
                components: components.clone(),
            },
            next,
            next_run,
        ),
        Action::SendWaFlow { body, flow_id, cta, next } => send(
            OutboundContent::WhatsAppFlow {
                body: body.render(field),
                flow_id: flow_id.clone(),
                flow_cta: cta.clone(),
                flow_token: None,
            },
            next,
            next_run,
        ),
        Action::WaitForReply { next, .. } if next_run.pending.is_some() => {
            let reply = next_run.pending.take().expect("checked");
            let shown = reply.as_text().map(str::to_owned);
            next_run.reply = Some(reply);
            advance(next_run, Some(next), Vec::new(), Outcome::Replied { reply: shown })
        }
        Action::WaitForReply { timeout_seconds, .. } => {
            let until = facts.now + seconds(*timeout_seconds);
            next_run.state = RunState::WaitingForReply { until };
            Stepped {
                run: Some(next_run),
                effects: Vec::new(),
                record: record(Outcome::Waiting { until }),
                then: Then::WakeAt(until),
            }
        }
        Action::Delay { seconds: s, .. } => {
            // What the customer said before a pause answers nothing asked after it.
            next_run.pending = None;
            let until = facts.now + seconds(*s);
            next_run.state = RunState::Delayed { until };
            Stepped {
                run: Some(next_run),
                effects: Vec::new(),
                record: record(Outcome::Delayed { until }),
                then: Then::WakeAt(until),
            }
        }
        Action::Condition { rules, otherwise } => {
            let chosen = rules.iter().position(|rule| holds(&rule.when, run, facts.contact));
            let to = chosen.map_or(otherwise, |i| &rules[i].next);
            advance(next_run, Some(to), Vec::new(), Outcome::Branched { rule: chosen, to: to.clone() })
        }
        Action::AddTag { tag, next } => advance(
            next_run,
            next.as_ref(),
            vec![Effect::AddTag { tag: tag.clone() }],
            Outcome::Tagged { tag: tag.clone() },
        ),
        Action::RemoveTag { tag, next } => advance(
            next_run,
            next.as_ref(),
            vec![Effect::RemoveTag { tag: tag.clone() }],
            Outcome::Untagged { tag: tag.clone() },
        ),
        Action::SetField { name, value, next } => {
            let value = value.render(field);
            let effect = Effect::SetField { name: name.clone(), value: value.clone() };
            advance(next_run, next.as_ref(), vec![effect], Outcome::FieldSet { name: name.clone(), value })
        }
        Action::Handoff => Stepped {
            run: None,
            effects: vec![Effect::Handoff],
            record: record(Outcome::HandedOff),
            then: Then::Nothing,
        },
        Action::End => Stepped { run: None, effects: Vec::new(), record: record(Outcome::Ended), then: Then::Nothing },
    }
}

fn seconds(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000).min(super::validate::MAX_WAIT_SECONDS as i64))
}

fn skip_reason(refusal: &Refusal) -> String {
    match refusal {
        Refusal::WindowClosed { .. } => {
            format!("{refusal}: use a sendTemplate node for outreach outside the window")
        }
        _ => refusal.to_string(),
    }
}

/// `{{name}}`, `{{phone}}`, `{{reply}}`, or a field the contact has.
fn field_value(name: &str, run: &Run, contact: &ContactFacts) -> Option<String> {
    match name {
        "name" => contact.name.clone(),
        "phone" => contact.phone.clone(),
        "reply" => run.reply.as_ref().and_then(|r| r.as_text()).map(str::to_owned),
        other => contact.fields.get(other).cloned(),
    }
}

fn holds(test: &Test, run: &Run, contact: &ContactFacts) -> bool {
    match test {
        // A reply is what was typed or which button was tapped: either may be tested.
        Test::Reply(test) => match &run.reply {
            None => text_holds(test, None),
            Some(reply) => {
                let values: Vec<&str> =
                    [reply.payload.as_deref(), reply.text.as_deref()].into_iter().flatten().collect();
                if values.is_empty() {
                    text_holds(test, None)
                } else {
                    values.iter().any(|v| text_holds(test, Some(v)))
                }
            }
        },
        Test::Field { name, test } => text_holds(test, field_value(name, run, contact).as_deref()),
        Test::HasTag(tag) => contact.tags.contains(tag),
        Test::LacksTag(tag) => !contact.tags.contains(tag),
    }
}

fn text_holds(test: &TextTest, value: Option<&str>) -> bool {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    match (test, value) {
        (TextTest::Exists(wanted), value) => value.is_some() == *wanted,
        (_, None) => false,
        (TextTest::Equals(expected), Some(v)) => v.to_lowercase() == expected.trim().to_lowercase(),
        (TextTest::Contains(part), Some(v)) => v.to_lowercase().contains(&part.trim().to_lowercase()),
        (TextTest::Matches(pattern), Some(v)) => regex::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .is_ok_and(|re| re.is_match(v)),
    }
}
