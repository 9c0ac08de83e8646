//! Which automation an event starts: the triggers that match it, on the conversation's channel,
//! and of those the highest priority (then the oldest automation, then the smallest id, so the
//! choice never depends on the order a query returned them in).

use chrono::{DateTime, Utc};

use super::definition::{Trigger, TriggerOn};
use super::engine::Reply;
use crate::domain::{AutomationId, Channel, MessageContent};

/// What happened, as triggers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stimulus {
    Message(Incoming),
    TagAdded(String),
}

/// A customer message, reduced to what triggers and conditions look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    pub text: Option<String>,
    /// The id of a tapped reply button or list row (WhatsApp), or an Instagram quick reply or
    /// postback payload.
    pub reply_payload: Option<String>,
    /// A template quick-reply button's payload (or its text when Meta sends no payload).
    pub template_button: Option<String>,
    pub flow_completed: bool,
}

impl Incoming {
    pub fn of(content: &MessageContent) -> Self {
        match content {
            MessageContent::Text { body } => Self { text: Some(body.clone()), ..Self::default() },
            MessageContent::ButtonReply { id, title } | MessageContent::ListReply { id, title, .. } => {
                Self { text: Some(title.clone()), reply_payload: Some(id.clone()), ..Self::default() }
            }
            MessageContent::TemplateButton { payload, text } => Self {
                text: Some(text.clone()),
                template_button: Some(payload.clone().unwrap_or_else(|| text.clone())),
                ..Self::default()
            },
            MessageContent::FlowReply { response, .. } => {
                Self { text: Some(response.to_string()), flow_completed: true, ..Self::default() }
            }
            MessageContent::InstagramMessage { text, quick_reply, .. } => {
                Self { text: text.clone(), reply_payload: quick_reply.clone(), ..Self::default() }
            }
            MessageContent::Postback { title, payload } => {
                Self { text: title.clone(), reply_payload: payload.clone(), ..Self::default() }
            }
            _ => Self::default(),
        }
    }

    /// The same message as the answer to a `waitForReply`.
    pub fn as_reply(&self) -> Reply {
        Reply { text: self.text.clone(), payload: self.reply_payload.clone().or_else(|| self.template_button.clone()) }
    }
}

/// Whether `trigger` fires for `stimulus` in a conversation on `channel`.
pub fn fires(trigger: &Trigger, channel: Channel, stimulus: &Stimulus) -> bool {
    if !trigger.channel.admits(channel) {
        return false;
    }
    match (&trigger.on, stimulus) {
        (TriggerOn::Message, Stimulus::Message(_)) => true,
        (TriggerOn::Keyword { keywords }, Stimulus::Message(m)) => {
            m.text.as_deref().is_some_and(|text| keywords.iter().any(|k| has_keyword(text, k)))
        }
        (TriggerOn::Regex { pattern }, Stimulus::Message(m)) => m.text.as_deref().is_some_and(|text| {
            regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().is_ok_and(|re| re.is_match(text))
        }),
        (TriggerOn::Reply { payloads }, Stimulus::Message(m)) => {
            m.reply_payload.as_deref().is_some_and(|p| payloads.is_empty() || payloads.iter().any(|x| x == p))
        }
        (TriggerOn::TemplateButton { payloads }, Stimulus::Message(m)) => {
            m.template_button.as_deref().is_some_and(|p| payloads.is_empty() || payloads.iter().any(|x| x == p))
        }
        (TriggerOn::WaFlowCompleted, Stimulus::Message(m)) => m.flow_completed,
        (TriggerOn::TagAdded { tag }, Stimulus::TagAdded(added)) => tag.trim().eq_ignore_ascii_case(added),
        _ => false,
    }
}

/// The text is the keyword, or holds it as a whole word (`hi`, `Hi!`, `hi there` — not `this`).
fn has_keyword(text: &str, keyword: &str) -> bool {
    let keyword = keyword.trim().to_lowercase();
    let text = text.to_lowercase();
    if text.trim() == keyword {
        return true;
    }
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let wanted: Vec<&str> = keyword.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    !wanted.is_empty() && words.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// An enabled automation as the chooser sees it.
pub struct Candidate<'a> {
    pub automation_id: &'a AutomationId,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    pub trigger: &'a Trigger,
}

/// The automation that starts for `stimulus`, if any.
pub fn choose<'a, 'c>(
    candidates: &'c [Candidate<'a>],
    channel: Channel,
    stimulus: &Stimulus,
) -> Option<&'c Candidate<'a>> {
    candidates.iter().filter(|c| fires(c.trigger, channel, stimulus)).min_by(|a, b| {
        b.priority.cmp(&a.priority).then(a.created_at.cmp(&b.created_at)).then(a.automation_id.cmp(b.automation_id))
    })
}
