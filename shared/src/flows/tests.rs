//! The engine with a fake clock: a run driven tick by tick the way the runner drives it, with
//! nothing but the definition, the facts and time.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::definition::Definition;
use super::engine::{ContactFacts, Effect, Event, Facts, Outcome, Reply, Run, RunState, Stale, Stepped, Then, step};
use super::validate::validate;
use crate::domain::{AutomationId, Channel, RunId};
use crate::outbound::content::OutboundContent;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_680_000, 0).unwrap()
}

fn definition(json: Value) -> Definition {
    validate(&json).unwrap_or_else(|problems| panic!("invalid test definition: {problems:?}"))
}

/// A conversation with a bot, on a fake clock.
struct Bot {
    definition: Definition,
    run: Option<Run>,
    now: DateTime<Utc>,
    channel: Channel,
    last_inbound_at: Option<DateTime<Utc>>,
    contact: ContactFacts,
    /// Every step's outcome and effects, in order.
    log: Vec<(String, Outcome, Vec<Effect>)>,
    /// The wake-up armed by the last step, if any.
    wake_at: Option<DateTime<Utc>>,
}

impl Bot {
    fn new(definition: Value) -> Self {
        Self {
            definition: super::tests::definition(definition),
            run: None,
            now: t0(),
            channel: Channel::WhatsApp,
            last_inbound_at: Some(t0()),
            contact: ContactFacts { name: Some("Ana".into()), ..ContactFacts::default() },
            log: Vec::new(),
            wake_at: None,
        }
    }

    /// The customer triggered the automation: the run starts and runs until it parks or ends.
    fn start(&mut self) {
        self.run = Some(Run {
            run_id: RunId::parse("run_1").unwrap(),
            automation_id: AutomationId::parse("auto_1").unwrap(),
            version: 1,
            started_at: self.now,
            step: 0,
            at: self.definition.start.clone(),
            state: RunState::Ready,
            reply: None,
            pending: None,
        });
        self.settle(Event::Step);
    }

    fn tick(&mut self, event: Event) -> Result<Stepped, Stale> {
        let run = self.run.as_ref().expect("an active run");
        let facts = Facts {
            channel: self.channel,
            now: self.now,
            last_inbound_at: self.last_inbound_at,
            contact: &self.contact,
        };
        let stepped = step(&self.definition, run, event, &facts)?;
        self.log.push((stepped.record.node.to_string(), stepped.record.outcome.clone(), stepped.effects.clone()));
        for effect in &stepped.effects {
            match effect {
                Effect::AddTag { tag } => {
                    self.contact.tags.insert(tag.clone());
                }
                Effect::RemoveTag { tag } => {
                    self.contact.tags.remove(tag);
                }
                Effect::SetField { name, value } => {
                    self.contact.fields.insert(name.clone(), value.clone());
                }
                Effect::Send { .. } | Effect::Handoff => {}
            }
        }
        self.run = stepped.run.clone();
        self.wake_at = match stepped.then {
            Then::WakeAt(at) => Some(at),
            _ => None,
        };
        Ok(stepped)
    }

    /// Ticks `event`, then step ticks while the run is ready (what the step queue does).
    fn settle(&mut self, event: Event) {
        let mut stepped = self.tick(event).expect("the event fits the run");
        while stepped.then == Then::Step {
            stepped = self.tick(Event::Step).expect("a ready run steps");
        }
    }

    fn says(&mut self, text: &str) {
        self.last_inbound_at = Some(self.now);
        self.settle(Event::Reply(Reply { text: Some(text.into()), payload: None }));
    }

    fn taps(&mut self, payload: &str, title: &str) {
        self.last_inbound_at = Some(self.now);
        self.settle(Event::Reply(Reply { text: Some(title.into()), payload: Some(payload.into()) }));
    }

    /// The clock jumps; a due wake-up fires.
    fn later(&mut self, by: Duration) {
        self.now += by;
        if self.wake_at.is_some_and(|at| at <= self.now) {
            self.settle(Event::Wake);
        }
    }

    fn sent(&self) -> Vec<String> {
        self.log
            .iter()
            .flat_map(|(_, _, effects)| effects)
            .filter_map(|e| match e {
                Effect::Send { content: OutboundContent::Text { body, .. }, .. } => Some(body.clone()),
                Effect::Send { content: OutboundContent::Buttons { body, .. }, .. } => {
                    Some(format!("[buttons] {body}"))
                }
                Effect::Send { content: OutboundContent::Template { name, .. }, .. } => {
                    Some(format!("[template] {name}"))
                }
                Effect::Send { .. } => Some("[other]".into()),
                _ => None,
            })
            .collect()
    }

    fn visited(&self) -> Vec<String> {
        self.log.iter().map(|(node, _, _)| node.clone()).collect()
    }

    fn skipped(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|(node, outcome, _)| match outcome {
                Outcome::Skipped { reason } => Some(format!("{node}: {reason}")),
                _ => None,
            })
            .collect()
    }

    fn ended(&self) -> bool {
        self.run.is_none()
    }
}

fn welcome() -> Value {
    json!({
        "name": "Welcome",
        "trigger": { "type": "keyword", "keywords": ["hi", "hello"] },
        "start": "greet",
        "nodes": [
            { "id": "greet", "type": "sendInteractive", "body": "Hi {{name|there}}! What do you need?",
              "buttons": [{ "id": "sales", "title": "Buy" }, { "id": "support", "title": "Help" }], "next": "ask" },
            { "id": "ask", "type": "waitForReply", "timeout_seconds": 3600, "next": "route", "on_timeout": "nudge" },
            { "id": "route", "type": "condition", "rules": [
                { "when": { "reply": { "equals": "sales" } }, "next": "sales" },
                { "when": { "reply": { "contains": "help" } }, "next": "support" } ], "otherwise": "sorry" },
            { "id": "sales", "type": "sendMessage", "text": "Our catalogue: example.com/shop", "next": "tag" },
            { "id": "tag", "type": "addTag", "tag": "Lead" },
            { "id": "support", "type": "handoff" },
            { "id": "sorry", "type": "sendMessage", "text": "Sorry, I did not get that.", "next": "ask" },
            { "id": "nudge", "type": "sendTemplate", "name": "still_there", "language": "en_US" }
        ]
    })
}

#[test]
fn a_button_tap_takes_its_branch_and_the_run_ends_after_the_last_node() {
    let mut bot = Bot::new(welcome());
    bot.start();
    assert_eq!(bot.sent(), ["[buttons] Hi Ana! What do you need?"]);
    assert!(matches!(bot.run.as_ref().unwrap().state, RunState::WaitingForReply { .. }));
    bot.taps("sales", "Buy");
    assert_eq!(bot.sent().last().unwrap(), "Our catalogue: example.com/shop");
    assert_eq!(bot.visited(), ["greet", "ask", "ask", "route", "sales", "tag"]);
    assert!(bot.contact.tags.contains("lead"), "tags are stored normalised");
    assert!(bot.ended());
}

#[test]
fn typed_text_is_tested_too_and_the_handoff_node_hands_over_and_ends_the_run() {
    let mut bot = Bot::new(welcome());
    bot.start();
    bot.says("I need HELP please");
    let (_, outcome, effects) = bot.log.last().unwrap();
    assert_eq!(*outcome, Outcome::HandedOff);
    assert_eq!(effects, &[Effect::Handoff]);
    assert!(bot.ended());
}

#[test]
fn no_rule_holds_so_otherwise_loops_back_through_the_wait() {
    let mut bot = Bot::new(welcome());
    bot.start();
    bot.says("bananas");
    assert_eq!(bot.sent().last().unwrap(), "Sorry, I did not get that.");
    assert!(matches!(bot.run.as_ref().unwrap().state, RunState::WaitingForReply { .. }), "back at the wait");
    bot.says("bananas again");
    bot.taps("sales", "Buy");
    assert_eq!(bot.sent().iter().filter(|s| s.starts_with("Sorry")).count(), 2);
    assert!(bot.ended());
}

#[test]
fn a_wait_times_out_into_its_timeout_branch_and_a_late_reply_changes_nothing() {
    let mut bot = Bot::new(welcome());
    bot.start();
    bot.later(Duration::minutes(59));
    assert!(matches!(bot.run.as_ref().unwrap().state, RunState::WaitingForReply { .. }), "not yet");
    bot.later(Duration::minutes(1));
    assert_eq!(bot.sent().last().unwrap(), "[template] still_there");
    assert!(bot.ended());
}

#[test]
fn a_wake_up_for_a_run_that_moved_on_is_stale() {
    let mut bot = Bot::new(welcome());
    bot.start();
    let armed = bot.wake_at.unwrap();
    bot.taps("sales", "Buy");
    bot.now = armed;
    assert!(bot.run.is_none());
    // The same run parked again at the wait (the "sorry" loop) is not woken by an old timer
    // early: the wake-up is checked against the wait's own deadline.
    let mut bot = Bot::new(welcome());
    bot.start();
    bot.later(Duration::minutes(30));
    bot.says("bananas");
    let new_deadline = bot.wake_at.unwrap();
    assert_eq!(new_deadline, bot.now + Duration::hours(1));
    bot.now = armed;
    assert_eq!(bot.tick(Event::Wake).unwrap_err(), Stale::NotParked, "the first wait's timer is early for the second");
}

#[test]
fn a_reply_when_not_waiting_and_a_step_when_parked_do_not_fit() {
    let mut bot = Bot::new(welcome());
    bot.start();
    assert_eq!(bot.tick(Event::Step).unwrap_err(), Stale::NotReady);
    let mut delayed = Bot::new(json!({
        "name": "d", "trigger": { "type": "message" }, "start": "wait",
        "nodes": [ { "id": "wait", "type": "delay", "seconds": 60, "next": "hello" },
                   { "id": "hello", "type": "sendMessage", "text": "hello" } ]
    }));
    delayed.start();
    assert_eq!(delayed.tick(Event::Reply(Reply::default())).unwrap_err(), Stale::NotWaiting);
}

#[test]
fn a_message_typed_while_the_bot_is_still_talking_answers_its_next_question() {
    let mut bot = Bot::new(welcome());
    bot.run = Some(Run {
        run_id: RunId::parse("run_1").unwrap(),
        automation_id: AutomationId::parse("auto_1").unwrap(),
        version: 1,
        started_at: bot.now,
        step: 0,
        at: bot.definition.start.clone(),
        state: RunState::Ready,
        reply: None,
        pending: Some(Reply { text: Some("Buy".into()), payload: Some("sales".into()) }),
    });
    bot.settle(Event::Step);
    assert_eq!(bot.visited(), ["greet", "ask", "route", "sales", "tag"], "the wait took the early answer");
    assert!(bot.ended());
}

#[test]
fn a_message_before_a_delay_answers_nothing_asked_after_it() {
    let mut bot = Bot::new(json!({
        "name": "d", "trigger": { "type": "message" }, "start": "pause",
        "nodes": [
            { "id": "pause", "type": "delay", "seconds": 60, "next": "ask" },
            { "id": "ask", "type": "waitForReply", "timeout_seconds": 60, "next": "yes" },
            { "id": "yes", "type": "end" }
        ]
    }));
    bot.start();
    bot.run.as_mut().unwrap().pending = None;
    let mut run = bot.run.clone().unwrap();
    run.state = RunState::Ready;
    run.at = crate::domain::NodeId::parse("pause").unwrap();
    run.pending = Some(Reply { text: Some("early".into()), payload: None });
    bot.run = Some(run);
    bot.settle(Event::Step);
    bot.later(Duration::seconds(60));
    assert!(matches!(bot.run.as_ref().unwrap().state, RunState::WaitingForReply { .. }), "still asking");
}

#[test]
fn a_three_day_delay_resumes_only_when_its_time_has_come() {
    let mut bot = Bot::new(json!({
        "name": "Follow-up", "trigger": { "type": "message" }, "start": "thanks",
        "nodes": [
            { "id": "thanks", "type": "sendMessage", "text": "Thanks for your order!", "next": "wait" },
            { "id": "wait", "type": "delay", "seconds": 259200, "next": "review" },
            { "id": "review", "type": "sendTemplate", "name": "review_request", "language": "en_US" }
        ]
    }));
    bot.start();
    assert_eq!(bot.wake_at, Some(t0() + Duration::days(3)));
    bot.later(Duration::days(2));
    assert_eq!(bot.sent(), ["Thanks for your order!"]);
    bot.later(Duration::days(1));
    assert_eq!(bot.sent(), ["Thanks for your order!", "[template] review_request"]);
    assert!(bot.ended());
}

#[test]
fn outside_the_window_a_send_message_is_refused_with_the_reason_and_a_template_goes() {
    let mut bot = Bot::new(json!({
        "name": "Late", "trigger": { "type": "message" }, "start": "wait",
        "nodes": [
            { "id": "wait", "type": "delay", "seconds": 90000, "next": "text" },
            { "id": "text", "type": "sendMessage", "text": "Still interested?", "next": "template" },
            { "id": "template", "type": "sendTemplate", "name": "comeback", "language": "en_US" }
        ]
    }));
    bot.start();
    bot.later(Duration::hours(25));
    assert_eq!(bot.sent(), ["[template] comeback"]);
    let skipped = bot.skipped();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].starts_with("text: the 24-hour customer service window closed"), "{skipped:?}");
    assert!(skipped[0].contains("sendTemplate"), "says what to use instead: {skipped:?}");
}

#[test]
fn dnd_skips_every_send_node_with_a_reason_and_the_graph_goes_on() {
    let mut bot = Bot::new(welcome());
    bot.contact.tags = BTreeSet::from(["dnd".to_owned()]);
    bot.start();
    assert!(bot.sent().is_empty());
    assert!(bot.skipped()[0].contains("dnd"), "{:?}", bot.skipped());
    bot.taps("sales", "Buy");
    assert!(bot.sent().is_empty(), "nothing reaches Meta");
    assert!(bot.contact.tags.contains("lead"), "the rest of the graph still runs");
}

#[test]
fn on_instagram_whatsapp_only_nodes_are_skipped_and_text_goes() {
    // "Both", or switched to Instagram only: the FAQ's two settings for Instagram DMs.
    for channel in ["both", "instagram"] {
        let mut json = welcome();
        json["trigger"]["channel"] = json!(channel);
        let mut bot = Bot::new(json);
        bot.channel = Channel::Instagram;
        bot.start();
        assert!(bot.sent().is_empty());
        let skipped = bot.skipped();
        assert!(skipped[0].starts_with("greet: Instagram has no interactive messages"), "{channel}: {skipped:?}");
        bot.says("what?");
        assert_eq!(bot.sent(), ["Sorry, I did not get that."], "{channel}: free-form text works on Instagram");
    }
}

#[test]
fn fields_fill_text_set_field_reads_the_reply_and_conditions_test_fields_and_tags() {
    let mut bot = Bot::new(json!({
        "name": "Profile", "trigger": { "type": "message" }, "start": "ask",
        "nodes": [
            { "id": "ask", "type": "sendMessage", "text": "Which city, {{name|friend}}?", "next": "wait" },
            { "id": "wait", "type": "waitForReply", "timeout_seconds": 600, "next": "store" },
            { "id": "store", "type": "setField", "name": "city", "value": "{{reply}}", "next": "check" },
            { "id": "check", "type": "condition", "rules": [
                { "when": { "has_tag": "VIP" }, "next": "vip" },
                { "when": { "field": { "name": "city", "matches": "^par" } }, "next": "paris" } ],
              "otherwise": "bye" },
            { "id": "vip", "type": "sendMessage", "text": "Hello VIP" },
            { "id": "paris", "type": "sendMessage", "text": "Bonjour {{name}} from {{city}}!" },
            { "id": "bye", "type": "end" }
        ]
    }));
    bot.contact.name = None;
    bot.start();
    assert_eq!(bot.sent(), ["Which city, friend?"]);
    bot.says("Paris");
    assert_eq!(bot.contact.fields.get("city").map(String::as_str), Some("Paris"));
    assert_eq!(bot.sent().last().unwrap(), "Bonjour  from Paris!", "no name and no default: empty");
}

#[test]
fn every_step_has_its_own_job_id_so_a_redelivered_tick_sends_the_same_job() {
    let mut bot = Bot::new(welcome());
    bot.start();
    let first = bot.log[0].2.clone();
    let run = Run { step: 0, at: bot.definition.start.clone(), state: RunState::Ready, ..bot.run.clone().unwrap() };
    let facts =
        Facts { channel: Channel::WhatsApp, now: bot.now, last_inbound_at: bot.last_inbound_at, contact: &bot.contact };
    let again = step(&bot.definition, &run, Event::Step, &facts).unwrap();
    assert_eq!(again.effects, first, "the same step, the same job");
    let Effect::Send { job_id, .. } = &first[0] else { panic!("a send") };
    assert_eq!(job_id.as_str(), "flow-run_1-0");
}

#[test]
fn a_node_that_vanished_from_the_graph_is_reported() {
    let mut bot = Bot::new(welcome());
    bot.start();
    let mut run = bot.run.clone().unwrap();
    run.at = crate::domain::NodeId::parse("gone").unwrap();
    let facts = Facts { channel: Channel::WhatsApp, now: bot.now, last_inbound_at: None, contact: &bot.contact };
    assert!(matches!(step(&bot.definition, &run, Event::Step, &facts), Err(Stale::UnknownNode(_))));
}

mod validation {
    use super::*;
    use crate::flows::validate::Problem;

    fn problems(json: Value) -> Vec<Problem> {
        validate(&json).expect_err("the definition is refused")
    }

    fn at(problems: &[Problem], path: &str) -> String {
        problems
            .iter()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("no problem at {path}: {problems:?}"))
            .problem
            .clone()
    }

    fn with_nodes(nodes: Value) -> Value {
        json!({ "name": "t", "trigger": { "type": "message" }, "start": "a", "nodes": nodes })
    }

    #[test]
    fn the_sample_welcome_flow_is_valid() {
        definition(welcome());
    }

    #[test]
    fn an_unknown_node_type_is_named_with_the_known_ones() {
        let p = problems(with_nodes(json!([{ "id": "a", "type": "sendSms", "text": "x" }])));
        assert!(at(&p, "nodes[0].type").contains("unknown node type `sendSms`; one of sendMessage"));
    }

    #[test]
    fn a_dangling_edge_names_the_missing_node() {
        let p = problems(with_nodes(json!([{ "id": "a", "type": "sendMessage", "text": "x", "next": "b" }])));
        assert_eq!(at(&p, "nodes[0].next"), "no node has the id `b`");
    }

    #[test]
    fn an_unreachable_node_is_reported() {
        let p = problems(with_nodes(json!([
            { "id": "a", "type": "end" },
            { "id": "island", "type": "sendMessage", "text": "x" }
        ])));
        assert!(at(&p, "nodes[1]").contains("cannot be reached"));
    }

    #[test]
    fn missing_parameters_are_named_by_their_field() {
        let p = problems(with_nodes(json!([
            { "id": "a", "type": "waitForReply", "next": "b" },
            { "id": "b", "type": "addTag", "next": "c" },
            { "id": "c", "type": "sendMessage" }
        ])));
        assert_eq!(at(&p, "nodes[0].timeout_seconds"), "is required");
        assert_eq!(at(&p, "nodes[1].tag"), "is required");
        assert!(at(&p, "nodes[2].text").contains("exactly one of text and media"));
    }

    #[test]
    fn a_cycle_without_a_wait_is_refused_and_one_through_a_wait_is_not() {
        let p = problems(with_nodes(json!([
            { "id": "a", "type": "sendMessage", "text": "x", "next": "b" },
            { "id": "b", "type": "condition", "rules": [{ "when": { "has_tag": "x" }, "next": "a" }], "otherwise": "c" },
            { "id": "c", "type": "end" }
        ])));
        assert!(at(&p, "nodes[0]").contains("loop with no waitForReply or delay (a → b → a)"), "{p:?}");
        definition(with_nodes(json!([
            { "id": "a", "type": "sendMessage", "text": "x", "next": "w" },
            { "id": "w", "type": "waitForReply", "timeout_seconds": 60, "next": "a" }
        ])));
    }

    #[test]
    fn an_automation_switched_to_instagram_keeps_its_whatsapp_only_nodes() {
        let mut json = welcome();
        json["trigger"]["channel"] = json!("instagram");
        assert!(definition(json).nodes.iter().any(|n| n.action.whatsapp_only()), "saved as it is, skipped when run");
    }

    #[test]
    fn a_node_that_does_not_parse_is_reported_once_not_again_as_a_missing_edge_target() {
        let p = problems(with_nodes(json!([
            { "id": "a", "type": "sendMessage", "text": "x", "next": "w" },
            { "id": "w", "type": "waitForReply", "next": "a" }
        ])));
        assert_eq!(p, [Problem { path: "nodes[1].timeout_seconds".into(), problem: "is required".into() }]);
    }

    #[test]
    fn tags_are_kept_in_their_normal_form() {
        let d = definition(json!({ "name": "t", "trigger": { "type": "tagAdded", "tag": " VIP " }, "start": "a",
            "nodes": [{ "id": "a", "type": "addTag", "tag": "Lead" }] }));
        assert_eq!(serde_json::to_value(&d).unwrap()["trigger"]["tag"], "vip");
        assert_eq!(serde_json::to_value(&d).unwrap()["nodes"][0]["tag"], "lead");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(json!({
            "name": "", "trigger": { "type": "regex", "pattern": "(" }, "start": "nowhere",
            "nodes": [
                { "id": "a", "type": "delay", "seconds": 0 },
                { "id": "a", "type": "sendInteractive", "body": "b", "buttons": [
                    { "id": "1", "title": "one" }, { "id": "2", "title": "two" },
                    { "id": "3", "title": "three" }, { "id": "4", "title": "four" } ] },
                { "id": "t", "type": "sendMessage", "text": "Hi {{name" }
            ]
        }));
        for path in
            ["name", "trigger.pattern", "start", "nodes[0].seconds", "nodes[1].id", "nodes[1].buttons", "nodes[2]"]
        {
            at(&p, path);
        }
    }

    #[test]
    fn triggers_are_checked_too() {
        let p = problems(
            json!({ "name": "t", "trigger": { "type": "whenever" }, "start": "a", "nodes": [{ "id": "a", "type": "end" }] }),
        );
        assert!(at(&p, "trigger.type").contains("unknown type `whenever`"));
        let p = problems(
            json!({ "name": "t", "trigger": { "type": "waFlowCompleted", "channel": "instagram" }, "start": "a", "nodes": [{ "id": "a", "type": "end" }] }),
        );
        assert!(at(&p, "trigger.channel").contains("only on WhatsApp"));
        let p = problems(
            json!({ "name": "t", "trigger": { "type": "keyword", "keywords": [] }, "start": "a", "nodes": [{ "id": "a", "type": "end" }] }),
        );
        at(&p, "trigger.keywords");
    }
}

mod triggers {
    use super::*;
    use crate::domain::MessageContent;
    use crate::flows::definition::Trigger;
    use crate::flows::trigger::{Candidate, Incoming, Stimulus, choose, fires};

    fn trigger(json: Value) -> Trigger {
        serde_json::from_value(json).unwrap()
    }

    fn text(body: &str) -> Stimulus {
        Stimulus::Message(Incoming::of(&MessageContent::Text { body: body.into() }))
    }

    #[test]
    fn keywords_match_a_whole_word_in_any_case() {
        let t = trigger(json!({ "type": "keyword", "keywords": ["hi", "price list"] }));
        for yes in ["hi", "Hi!", "oh hi there", "send me the PRICE LIST please"] {
            assert!(fires(&t, Channel::WhatsApp, &text(yes)), "{yes}");
        }
        for no in ["this", "high", "price"] {
            assert!(!fires(&t, Channel::WhatsApp, &text(no)), "{no}");
        }
    }

    #[test]
    fn the_channel_filter_defaults_to_whatsapp() {
        let t = trigger(json!({ "type": "message" }));
        assert!(fires(&t, Channel::WhatsApp, &text("x")));
        assert!(!fires(&t, Channel::Instagram, &text("x")), "FAQ: existing automations never wake on Instagram");
        let both = trigger(json!({ "type": "message", "channel": "both" }));
        assert!(fires(&both, Channel::Instagram, &text("x")));
    }

    #[test]
    fn replies_template_buttons_flow_completions_and_tags_each_have_their_trigger() {
        let reply =
            Stimulus::Message(Incoming::of(&MessageContent::ButtonReply { id: "yes".into(), title: "Yes".into() }));
        assert!(fires(&trigger(json!({ "type": "reply", "payloads": ["yes"] })), Channel::WhatsApp, &reply));
        assert!(!fires(&trigger(json!({ "type": "reply", "payloads": ["no"] })), Channel::WhatsApp, &reply));
        let tapped = Stimulus::Message(Incoming::of(&MessageContent::TemplateButton {
            payload: Some("STOP".into()),
            text: "Stop".into(),
        }));
        assert!(fires(&trigger(json!({ "type": "templateButton", "payloads": ["STOP"] })), Channel::WhatsApp, &tapped));
        let done =
            Stimulus::Message(Incoming::of(&MessageContent::FlowReply { name: None, response: json!({"a": 1}) }));
        assert!(fires(&trigger(json!({ "type": "waFlowCompleted" })), Channel::WhatsApp, &done));
        assert!(!fires(&trigger(json!({ "type": "waFlowCompleted" })), Channel::WhatsApp, &text("x")));
        let tag = trigger(json!({ "type": "tagAdded", "tag": "vip" }));
        assert!(fires(&tag, Channel::WhatsApp, &Stimulus::TagAdded("vip".into())));
        assert!(!fires(&tag, Channel::WhatsApp, &text("vip")));
    }

    #[test]
    fn the_highest_priority_wins_then_the_oldest() {
        let any = trigger(json!({ "type": "message" }));
        let hi = trigger(json!({ "type": "keyword", "keywords": ["hi"] }));
        let (a, b, c) =
            (AutomationId::parse("a").unwrap(), AutomationId::parse("b").unwrap(), AutomationId::parse("c").unwrap());
        let candidates = [
            Candidate { automation_id: &a, priority: 0, created_at: t0(), trigger: &any },
            Candidate { automation_id: &b, priority: 5, created_at: t0() + Duration::days(1), trigger: &hi },
            Candidate { automation_id: &c, priority: 5, created_at: t0() + Duration::days(2), trigger: &hi },
        ];
        assert_eq!(choose(&candidates, Channel::WhatsApp, &text("hi")).unwrap().automation_id, &b);
        assert_eq!(choose(&candidates, Channel::WhatsApp, &text("yo")).unwrap().automation_id, &a);
        assert!(choose(&candidates, Channel::Instagram, &text("hi")).is_none());
    }
}
