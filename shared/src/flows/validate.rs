//! Checking a definition on save, so that nothing a run meets can be malformed: every problem
//! is reported at once, each with the path of the field it is about (`nodes[2].next`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::definition::{Action, ChannelFilter, Definition, Node, Test, TextTest, TriggerOn};
use crate::contacts::Tag;
use crate::domain::NodeId;

/// One problem with a definition: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub problem: String,
}

fn problem(path: impl Into<String>, problem: impl Into<String>) -> Problem {
    Problem { path: path.into(), problem: problem.into() }
}

pub const MAX_NODES: usize = 200;
/// Waits and delays: one second to 90 days.
pub const MAX_WAIT_SECONDS: u64 = 90 * 24 * 3600;
const MAX_TEXT_CHARS: usize = 4096;
const MAX_BUTTONS: usize = 3;
const MAX_BUTTON_TITLE: usize = 20;
const MAX_LIST_ROWS: usize = 10;
const MEDIA_KINDS: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// Parses and checks a definition; on failure, every problem found.
pub fn validate(raw: &Value) -> Result<Definition, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(object) = raw.as_object() else {
        return Err(vec![problem("", "must be a JSON object with name, trigger, start and nodes")]);
    };
    let name = match object.get("name").and_then(Value::as_str).map(str::trim) {
        Some(name) if !name.is_empty() && name.chars().count() <= 100 => name.to_owned(),
        _ => {
            problems.push(problem("name", "is required: 1 to 100 characters"));
            String::new()
        }
    };
    let priority = match object.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64().and_then(|p| i32::try_from(p).ok()) {
            Some(p) => p,
            None => {
                problems.push(problem("priority", "must be a whole number"));
                0
            }
        },
    };
    let mut trigger = match object.get("trigger") {
        None => {
            problems.push(problem("trigger", "is required"));
            None
        }
        Some(t) => match serde_json::from_value::<super::definition::Trigger>(t.clone()) {
            Ok(trigger) => Some(trigger),
            Err(e) => {
                problems.push(serde_problem("trigger", t, &e, TRIGGER_KINDS));
                None
            }
        },
    };
    let start = match object.get("start").and_then(Value::as_str).map(NodeId::parse) {
        Some(Ok(id)) => Some(id),
        _ => {
            problems.push(problem("start", "is required: the id of the node a run starts at"));
            None
        }
    };
    let mut nodes = Vec::new();
    // Nodes that exist but did not parse: their problem is reported once, and edges to them
    // are not reported again as dangling.
    let mut unparsed: BTreeSet<NodeId> = BTreeSet::new();
    match object.get("nodes").and_then(Value::as_array) {
        None => problems.push(problem("nodes", "is required: a list of nodes")),
        Some(list) if list.is_empty() => problems.push(problem("nodes", "must hold at least one node")),
        Some(list) if list.len() > MAX_NODES => {
            problems.push(problem("nodes", format!("holds {} nodes; at most {MAX_NODES}", list.len())))
        }
        Some(list) => {
            for (i, node) in list.iter().enumerate() {
                match parse_node(&format!("nodes[{i}]"), node) {
                    Ok(node) => nodes.push((i, node)),
                    Err(p) => {
                        problems.push(p);
                        if let Some(Ok(id)) = node.get("id").and_then(Value::as_str).map(NodeId::parse) {
                            unparsed.insert(id);
                        }
                    }
                }
            }
        }
    }

    if let Some(trigger) = &mut trigger {
        check_trigger(&mut trigger.on, trigger.channel, &mut problems);
    }
    for (i, node) in &mut nodes {
        // A WhatsApp-only node (sendTemplate, sendInteractive, sendWaFlow) is kept whatever the
        // channel: on an Instagram conversation it is skipped with its reason, and the run goes
        // on (FAQ: "My automation doesn't fire on Instagram DMs" — switching an automation to
        // Instagram must not need its WhatsApp nodes removed first).
        check_parameters(&format!("nodes[{i}]"), &mut node.action, &mut problems);
    }
    check_graph(start.as_ref(), &nodes, &unparsed, &mut problems);

    match (problems.is_empty(), trigger, start) {
        (true, Some(trigger), Some(start)) => {
            Ok(Definition { name, priority, trigger, start, nodes: nodes.into_iter().map(|(_, n)| n).collect() })
        }
        _ => Err(problems),
    }
}

const TRIGGER_KINDS: &[&str] =
    &["message", "keyword", "regex", "reply", "templateButton", "waFlowCompleted", "tagAdded"];

fn parse_node(path: &str, raw: &Value) -> Result<Node, Problem> {
    let Some(object) = raw.as_object() else {
        return Err(problem(path, "must be an object with an id and a type"));
    };
    match object.get("type").and_then(Value::as_str) {
        None => return Err(problem(format!("{path}.type"), "is required")),
        Some(kind) if !Action::KINDS.contains(&kind) => {
            return Err(problem(
                format!("{path}.type"),
                format!("unknown node type `{kind}`; one of {}", Action::KINDS.join(", ")),
            ));
        }
        Some(_) => {}
    }
    let id = match object.get("id").and_then(Value::as_str).map(NodeId::parse) {
        Some(Ok(id)) => id,
        Some(Err(e)) => return Err(problem(format!("{path}.id"), e.reason)),
        None => return Err(problem(format!("{path}.id"), "is required")),
    };
    serde_json::from_value::<Action>(raw.clone())
        .map(|action| Node { id, action })
        .map_err(|e| serde_problem(path, raw, &e, Action::KINDS.as_slice()))
}

/// Serde's message, placed at the field it names when it names one.
fn serde_problem(path: &str, raw: &Value, error: &serde_json::Error, kinds: &[&str]) -> Problem {
    let message = error.to_string();
    if let Some(field) = message.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
        return problem(format!("{path}.{field}"), "is required");
    }
    if message.starts_with("unknown variant") || raw.get("type").is_none() {
        let kind = raw.get("type").and_then(Value::as_str).unwrap_or("");
        return problem(format!("{path}.type"), format!("unknown type `{kind}`; one of {}", kinds.join(", ")));
    }
    problem(path, message)
}

fn check_trigger(on: &mut TriggerOn, channel: ChannelFilter, problems: &mut Vec<Problem>) {
    match on {
        TriggerOn::Keyword { keywords } => {
            if keywords.is_empty() || keywords.iter().any(|k| k.trim().is_empty()) {
                problems.push(problem("trigger.keywords", "must hold at least one keyword, none empty"));
            }
        }
        TriggerOn::Regex { pattern } => {
            if let Err(e) = regex::RegexBuilder::new(pattern).size_limit(1 << 20).build() {
                problems.push(problem("trigger.pattern", format!("is not a valid regular expression: {e}")));
            }
        }
        TriggerOn::TagAdded { tag } => check_tag("trigger.tag", tag, problems),
        TriggerOn::Message
        | TriggerOn::Reply { .. }
        | TriggerOn::TemplateButton { .. }
        | TriggerOn::WaFlowCompleted => {}
    }
    if on.whatsapp_only() && channel == ChannelFilter::Instagram {
        problems.push(problem("trigger.channel", "this trigger exists only on WhatsApp"));
    }
}

fn check_text(path: &str, text: &str, problems: &mut Vec<Problem>) {
    if text.chars().count() > MAX_TEXT_CHARS {
        problems.push(problem(path, format!("is longer than {MAX_TEXT_CHARS} characters")));
    }
}

fn check_wait(path: &str, seconds: u64, problems: &mut Vec<Problem>) {
    if !(1..=MAX_WAIT_SECONDS).contains(&seconds) {
        problems.push(problem(path, format!("must be 1 second to 90 days ({MAX_WAIT_SECONDS} seconds)")));
    }
}

/// Tags are stored normalised (`VIP` → `vip`), so the definition is rewritten to that form.
fn check_tag(path: &str, tag: &mut String, problems: &mut Vec<Problem>) {
    match Tag::parse(tag) {
        Ok(t) => *tag = t.as_str().to_owned(),
        Err(why) => problems.push(problem(path, why)),
    }
}

fn check_regex(path: &str, pattern: &str, problems: &mut Vec<Problem>) {
    if let Err(e) = regex::RegexBuilder::new(pattern).size_limit(1 << 20).build() {
        problems.push(problem(path, format!("is not a valid regular expression: {e}")));
    }
}

fn check_parameters(path: &str, action: &mut Action, problems: &mut Vec<Problem>) {
    match action {
        Action::SendMessage { text, media, .. } => match (text, media) {
            (Some(text), None) => check_text(&format!("{path}.text"), text.as_str(), problems),
            (None, Some(media)) => {
                if !MEDIA_KINDS.contains(&media.kind.as_str()) {
                    problems.push(problem(
                        format!("{path}.media.kind"),
                        format!("must be one of {}", MEDIA_KINDS.join(", ")),
                    ));
                }
                if media.link.is_none() == media.id.is_none() {
                    problems.push(problem(format!("{path}.media"), "needs exactly one of link and id"));
                }
                if let Some(link) = &media.link
                    && url::Url::parse(link).map(|u| u.scheme() != "https").unwrap_or(true)
                {
                    problems.push(problem(format!("{path}.media.link"), "must be an https URL"));
                }
            }
            _ => problems.push(problem(format!("{path}.text"), "a sendMessage needs exactly one of text and media")),
        },
        Action::SendInteractive { body, buttons, list, .. } => {
            check_text(&format!("{path}.body"), body.as_str(), problems);
            match (buttons.is_empty(), list) {
                (false, None) => {
                    if buttons.len() > MAX_BUTTONS {
                        problems.push(problem(format!("{path}.buttons"), "WhatsApp allows at most 3 reply buttons"));
                    }
                    let mut seen = BTreeSet::new();
                    for (b, button) in buttons.iter().enumerate() {
                        if button.id.trim().is_empty() || !seen.insert(button.id.as_str()) {
                            problems.push(problem(format!("{path}.buttons[{b}].id"), "must be non-empty and unique"));
                        }
                        if button.title.trim().is_empty() || button.title.chars().count() > MAX_BUTTON_TITLE {
                            problems.push(problem(format!("{path}.buttons[{b}].title"), "must be 1 to 20 characters"));
                        }
                    }
                }
                (true, Some(list)) => {
                    let rows: usize = list.sections.iter().map(|s| s.rows.len()).sum();
                    if rows == 0 || rows > MAX_LIST_ROWS {
                        problems.push(problem(format!("{path}.list.sections"), "must hold 1 to 10 rows in all"));
                    }
                    if list.button.trim().is_empty() || list.button.chars().count() > MAX_BUTTON_TITLE {
                        problems.push(problem(format!("{path}.list.button"), "must be 1 to 20 characters"));
                    }
                }
                _ => problems
                    .push(problem(format!("{path}.buttons"), "a sendInteractive needs either buttons or a list")),
            }
        }
        Action::SendTemplate { name, language, .. } => {
            if name.trim().is_empty() {
                problems.push(problem(format!("{path}.name"), "is required"));
            }
            if language.trim().is_empty() {
                problems.push(problem(format!("{path}.language"), "is required (e.g. en_US)"));
            }
        }
        Action::SendWaFlow { body, flow_id, cta, .. } => {
            check_text(&format!("{path}.body"), body.as_str(), problems);
            if flow_id.trim().is_empty() {
                problems.push(problem(format!("{path}.flow_id"), "is required"));
            }
            if cta.trim().is_empty() || cta.chars().count() > MAX_BUTTON_TITLE {
                problems.push(problem(format!("{path}.cta"), "must be 1 to 20 characters"));
            }
        }
        Action::WaitForReply { timeout_seconds, .. } => {
            check_wait(&format!("{path}.timeout_seconds"), *timeout_seconds, problems)
        }
        Action::Delay { seconds, .. } => check_wait(&format!("{path}.seconds"), *seconds, problems),
        Action::Condition { rules, .. } => {
            if rules.is_empty() {
                problems.push(problem(format!("{path}.rules"), "must hold at least one rule"));
            }
            for (r, rule) in rules.iter_mut().enumerate() {
                let at = format!("{path}.rules[{r}].when");
                match &mut rule.when {
                    Test::Reply(TextTest::Matches(p)) | Test::Field { test: TextTest::Matches(p), .. } => {
                        check_regex(&at, p, problems)
                    }
                    Test::HasTag(tag) | Test::LacksTag(tag) => check_tag(&at, tag, problems),
                    _ => {}
                }
                if let Test::Field { name, .. } = &rule.when {
                    check_field_name(&format!("{at}.name"), name, problems);
                }
            }
        }
        Action::AddTag { tag, .. } | Action::RemoveTag { tag, .. } => check_tag(&format!("{path}.tag"), tag, problems),
        Action::SetField { name, .. } => {
            check_field_name(&format!("{path}.name"), name, problems);
            if name == "reply" || name == "name" || name == "phone" {
                problems.push(problem(format!("{path}.name"), "`reply`, `name` and `phone` are kept by wapisnap"));
            }
        }
        Action::Handoff | Action::End => {}
    }
}

fn check_field_name(path: &str, name: &str, problems: &mut Vec<Problem>) {
    if name.is_empty() || name.len() > 50 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        problems.push(problem(path, "must be 1 to 50 letters, digits, _ or -"));
    }
}

/// Ids unique, edges lead somewhere, every node reachable, no loop that never waits.
fn check_graph(
    start: Option<&NodeId>,
    nodes: &[(usize, Node)],
    unparsed: &BTreeSet<NodeId>,
    problems: &mut Vec<Problem>,
) {
    let mut index: BTreeMap<&NodeId, usize> = BTreeMap::new();
    for (i, node) in nodes {
        if index.insert(&node.id, *i).is_some() {
            problems.push(problem(format!("nodes[{i}].id"), format!("`{}` is used by another node", node.id)));
        }
    }
    if let Some(start) = start
        && !index.contains_key(start)
        && !unparsed.contains(start)
    {
        problems.push(problem("start", format!("no node has the id `{start}`")));
    }
    for (i, node) in nodes {
        for (field, target) in node.action.edges() {
            if !index.contains_key(target) && !unparsed.contains(target) {
                problems.push(problem(format!("nodes[{i}].{field}"), format!("no node has the id `{target}`")));
            }
        }
    }
    let by_id: BTreeMap<&NodeId, &Node> = nodes.iter().map(|(_, n)| (&n.id, n)).collect();
    let mut reached = BTreeSet::new();
    // An unparsed node's own edges are unknown: once the run can reach one, any node might be
    // reachable through it, so no node is called unreachable.
    let mut reaches_unparsed = false;
    let mut todo: Vec<&NodeId> = start.into_iter().collect();
    while let Some(id) = todo.pop() {
        match by_id.get(id) {
            Some(node) if reached.insert(id) => todo.extend(node.action.edges().into_iter().map(|(_, t)| t)),
            None if unparsed.contains(id) => reaches_unparsed = true,
            _ => {}
        }
    }
    if start.is_some_and(|s| by_id.contains_key(s)) && !reaches_unparsed {
        for (i, node) in nodes {
            if !reached.contains(&node.id) {
                problems.push(problem(format!("nodes[{i}]"), format!("`{}` cannot be reached from start", node.id)));
            }
        }
    }
    for cycle in cycles_without_a_wait(&by_id) {
        let first = &cycle[0];
        let i = index[first];
        let path = cycle.iter().map(|n| n.as_str()).chain([first.as_str()]).collect::<Vec<_>>().join(" → ");
        problems.push(problem(
            format!("nodes[{i}]"),
            format!("is on a loop with no waitForReply or delay ({path}); a run would spin forever"),
        ));
    }
}

/// Loops made only of nodes that do not wait, each reported once (from its smallest id).
fn cycles_without_a_wait<'a>(by_id: &BTreeMap<&'a NodeId, &'a Node>) -> Vec<Vec<&'a NodeId>> {
    let successors = |id: &NodeId| -> Vec<&'a NodeId> {
        let node = by_id[id];
        if node.action.waits() {
            return Vec::new();
        }
        node.action
            .edges()
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| by_id.contains_key(t))
            .map(|t| by_id[t].id_ref())
            .collect()
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks: BTreeMap<&NodeId, Mark> = by_id.keys().map(|k| (*k, Mark::New)).collect();
    let mut found: Vec<Vec<&NodeId>> = Vec::new();
    let mut seen_cycles = BTreeSet::new();
    for root in by_id.keys() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative depth-first search; `path` is the current chain of nodes.
        let mut path: Vec<&NodeId> = vec![root];
        let mut stack: Vec<(&NodeId, Vec<&NodeId>)> = vec![(root, successors(root))];
        marks.insert(root, Mark::OnPath);
        while let Some((_, next)) = stack.last_mut() {
            match next.pop() {
                Some(target) => match marks[target] {
                    Mark::New => {
                        marks.insert(target, Mark::OnPath);
                        path.push(target);
                        stack.push((target, successors(target)));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|n| *n == target).expect("on path");
                        let mut cycle = path[from..].to_vec();
                        let smallest = cycle.iter().enumerate().min_by_key(|(_, n)| **n).map(|(i, _)| i).unwrap_or(0);
                        cycle.rotate_left(smallest);
                        if seen_cycles.insert(cycle.clone()) {
                            found.push(cycle);
                        }
                    }
                    Mark::Done => {}
                },
                None => {
                    let (done, _) = stack.pop().expect("non-empty");
                    marks.insert(done, Mark::Done);
                    path.pop();
                }
            }
        }
    }
    found
}

impl Node {
    fn id_ref(&self) -> &NodeId {
        &self.id
    }
}
