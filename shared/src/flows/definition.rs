//! An automation as its author writes it (JSON): a trigger and a graph of nodes. Nodes are a
//! list with ids; edges name ids (`next`, `on_timeout`, a condition's rules). A value of these
//! types has only been parsed; [`super::validate`] is what makes a definition runnable.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::text::TextTemplate;
use crate::domain::{Channel, NodeId};
use crate::outbound::content::{Button, ListSection};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    /// When several enabled automations match one event, the highest priority starts (then
    /// the oldest automation).
    #[serde(default)]
    pub priority: i32,
    pub trigger: Trigger,
    /// The node a run starts at.
    pub start: NodeId,
    pub nodes: Vec<Node>,
}

impl Definition {
    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| &n.id == id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(flatten)]
    pub on: TriggerOn,
    /// Which conversations the trigger listens to; WhatsApp unless said otherwise, so connecting
    /// Instagram never wakes existing WhatsApp automations (FAQ: "My automation doesn't fire on
    /// Instagram DMs").
    #[serde(default)]
    pub channel: ChannelFilter,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TriggerOn {
    /// Any inbound message.
    Message,
    /// A message whose text is, or contains as a word, one of the keywords (any case).
    Keyword { keywords: Vec<String> },
    /// A message whose text matches the regular expression.
    Regex { pattern: String },
    /// A tap on one of our reply buttons or list rows (WhatsApp), or a quick reply or postback
    /// (Instagram), by its payload id; no payloads = any.
    Reply {
        #[serde(default)]
        payloads: Vec<String>,
    },
    /// A tap on a template's quick-reply button, by payload; no payloads = any.
    TemplateButton {
        #[serde(default)]
        payloads: Vec<String>,
    },
    /// A completed WhatsApp Flow (`nfm_reply`).
    WaFlowCompleted,
    /// The tag was added to the contact through the API (a CSV import starts no automation:
    /// a bulk import would otherwise message every imported contact at once).
    TagAdded { tag: String },
}

impl TriggerOn {
    /// Triggers that only exist on WhatsApp.
    pub fn whatsapp_only(&self) -> bool {
        matches!(self, Self::TemplateButton { .. } | Self::WaFlowCompleted)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelFilter {
    #[default]
    Whatsapp,
    Instagram,
    Both,
}

impl ChannelFilter {
    pub fn admits(self, channel: Channel) -> bool {
        matches!(
            (self, channel),
            (Self::Both, _) | (Self::Whatsapp, Channel::WhatsApp) | (Self::Instagram, Channel::Instagram)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSpec {
    /// image, audio, video, document or sticker.
    pub kind: String,
    /// A public URL, or...
    #[serde(default)]
    pub link: Option<String>,
    /// ...a media id uploaded to Meta.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub caption: Option<TextTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSpec {
    /// The label of the button that opens the list.
    pub button: String,
    pub sections: Vec<ListSection>,
}

/// What a node does. `next` is where the run goes afterwards; a node without one ends the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// Free-form text or media: a reply inside the 24-hour window.
    SendMessage {
        #[serde(default)]
        text: Option<TextTemplate>,
        #[serde(default)]
        media: Option<MediaSpec>,
        #[serde(default)]
        next: Option<NodeId>,
    },
    /// Reply buttons (up to 3) or a list (WhatsApp only).
    SendInteractive {
        body: TextTemplate,
        #[serde(default)]
        buttons: Vec<Button>,
        #[serde(default)]
        list: Option<ListSpec>,
        #[serde(default)]
        next: Option<NodeId>,
    },
    /// An approved template: the node for outreach outside the window (WhatsApp only).
    SendTemplate {
        name: String,
        language: String,
        #[serde(default)]
        components: Vec<Value>,
        #[serde(default)]
        next: Option<NodeId>,
    },
    /// A WhatsApp Flow behind a call-to-action button (WhatsApp only).
    SendWaFlow {
        body: TextTemplate,
        flow_id: String,
        cta: String,
        #[serde(default)]
        next: Option<NodeId>,
    },
    /// Waits for the customer's next message; after `timeout_seconds` without one the run goes
    /// to `on_timeout` (or ends).
    WaitForReply {
        timeout_seconds: u64,
        next: NodeId,
        #[serde(default)]
        on_timeout: Option<NodeId>,
    },
    /// Pauses the run: up to 15 minutes through an SQS delay, longer through a one-time
    /// EventBridge Scheduler schedule.
    Delay {
        seconds: u64,
        #[serde(default)]
        next: Option<NodeId>,
    },
    /// The first rule that holds decides; none holds → `otherwise`.
    Condition {
        rules: Vec<Rule>,
        otherwise: NodeId,
    },
    AddTag {
        tag: String,
        #[serde(default)]
        next: Option<NodeId>,
    },
    RemoveTag {
        tag: String,
        #[serde(default)]
        next: Option<NodeId>,
    },
    /// Stores a contact field; the value may use `{{reply}}` and other fields.
    SetField {
        name: String,
        value: TextTemplate,
        #[serde(default)]
        next: Option<NodeId>,
    },
    /// Hands the conversation to a human: `humanHandoff` turns on and the run ends.
    Handoff,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub when: Test,
    pub next: NodeId,
}

/// What a condition looks at: the customer's latest reply in this run, a contact field, a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// `{"reply": {"equals": "sales"}}`: the reply's text or the tapped button's id.
    Reply(TextTest),
    /// `{"field": {"name": "plan", "equals": "pro"}}`
    Field {
        name: String,
        #[serde(flatten)]
        test: TextTest,
    },
    HasTag(String),
    LacksTag(String),
}

/// Case-insensitive, ignoring surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextTest {
    Equals(String),
    Contains(String),
    Matches(String),
    /// `true`: there is a value; `false`: there is none.
    Exists(bool),
}

/// The kinds Meta's Instagram API does not have (FAQ: "some node types are WhatsApp-only").
pub const WHATSAPP_ONLY_NODES: [&str; 3] = ["sendTemplate", "sendInteractive", "sendWaFlow"];

impl Action {
    pub const KINDS: [&'static str; 12] = [
        "sendMessage",
        "sendInteractive",
        "sendTemplate",
        "sendWaFlow",
        "waitForReply",
        "delay",
        "condition",
        "addTag",
        "removeTag",
        "setField",
        "handoff",
        "end",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            Self::SendMessage { .. } => "sendMessage",
            Self::SendInteractive { .. } => "sendInteractive",
            Self::SendTemplate { .. } => "sendTemplate",
            Self::SendWaFlow { .. } => "sendWaFlow",
            Self::WaitForReply { .. } => "waitForReply",
            Self::Delay { .. } => "delay",
            Self::Condition { .. } => "condition",
            Self::AddTag { .. } => "addTag",
            Self::RemoveTag { .. } => "removeTag",
            Self::SetField { .. } => "setField",
            Self::Handoff => "handoff",
            Self::End => "end",
        }
    }

    pub fn whatsapp_only(&self) -> bool {
        WHATSAPP_ONLY_NODES.contains(&self.kind())
    }

    /// Waits break loops: a cycle through one cannot spin without the customer or the clock.
    pub fn waits(&self) -> bool {
        matches!(self, Self::WaitForReply { .. } | Self::Delay { .. })
    }

    /// Every edge out of the node, with the field that holds it.
    pub fn edges(&self) -> Vec<(String, &NodeId)> {
        match self {
            Self::SendMessage { next, .. }
            | Self::SendInteractive { next, .. }
            | Self::SendTemplate { next, .. }
            | Self::SendWaFlow { next, .. }
            | Self::Delay { next, .. }
            | Self::AddTag { next, .. }
            | Self::RemoveTag { next, .. }
            | Self::SetField { next, .. } => next.iter().map(|n| ("next".to_owned(), n)).collect(),
            Self::WaitForReply { next, on_timeout, .. } => {
                let mut edges = vec![("next".to_owned(), next)];
                edges.extend(on_timeout.iter().map(|n| ("on_timeout".to_owned(), n)));
                edges
            }
            Self::Condition { rules, otherwise } => {
                let mut edges: Vec<_> =
                    rules.iter().enumerate().map(|(i, r)| (format!("rules[{i}].next"), &r.next)).collect();
                edges.push(("otherwise".to_owned(), otherwise));
                edges
            }
            Self::Handoff | Self::End => Vec::new(),
        }
    }
}
