//! The send policy: whether a message may go out now. Evaluated by the sender at send time —
//! not when the job was created — so a contact tagged `dnd` while a retry waited, a window that
//! closed, or a number that went to ERROR all stop the send.
//!
//! - 24-hour window (FAQ): free-form (text, media, interactive, WhatsApp Flow) only within 24 h
//!   of the customer's last inbound message; outside it only an APPROVED template.
//! - `dnd` (FAQ: "How does the DND tag work?") blocks every automated send — flow nodes,
//!   broadcasts, Smart Retry resends — but never a human reply from the inbox.
//! - Human handoff (FAQ: "An agent replied and the bot went silent") stops a conversation's
//!   flows: a flow's message still waiting to go out (on the queue, or for Smart Retry) when an
//!   agent takes over is not sent either.
//! - `do-not-send` (two 131026 in a row) blocks broadcasts.
//! - Templates must exist and be APPROVED; Instagram has no templates, no interactive messages
//!   and no WhatsApp Flows (FAQ: "My automation doesn't fire on Instagram DMs").
//! - A number that is not ACTIVE does not send.
//! - Meta's messaging limit (FAQ: "Why does a flow's sendTemplate work but the inbox template
//!   picker doesn't?") counts the unique customers a business portfolio reaches with templates
//!   outside their 24-hour window: a broadcast's recipients when it fans out, an inbox's or a
//!   flow's template when it is sent. A new customer over the limit is refused.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};

use super::window::{is_window_open, window_closes_at};
use crate::domain::{Channel, NumberState, TemplateStatus};

pub const DND_TAG: &str = "dnd";
pub const DO_NOT_SEND_TAG: &str = "do-not-send";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    FreeForm,
    Interactive,
    WhatsAppFlow,
    Template,
}

/// Who is sending, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentBy {
    /// An agent in the inbox composer: the reply itself, however many tries it takes to reach
    /// Meta (an answer that never came, Meta's rate limit), until Smart Retry resends it.
    Human,
    /// A flow node, first send or Smart Retry resend.
    Flow,
    /// Smart Retry resending an agent's reply after Meta refused it.
    SmartRetry,
    Broadcast,
}

/// Everything the rules look at, read fresh at send time.
#[derive(Debug, Clone)]
pub struct SendFacts {
    pub channel: Channel,
    pub sent_by: SentBy,
    pub kind: ContentKind,
    pub number_state: NumberState,
    pub contact_tags: BTreeSet<String>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// An agent has taken the conversation over (read for a flow's sends only).
    pub human_handoff: bool,
    pub now: DateTime<Utc>,
    /// For templates: the stored status, `None` when the template does not exist.
    pub template_status: Option<TemplateStatus>,
    /// For a send that counts toward Meta's messaging limit
    /// ([`counts_toward_messaging_limit`]), to a customer the portfolio has not reached in the
    /// last 24 hours: how many more new customers the limit allows. `None`: not counted.
    pub new_customers_left: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NumberNotActive(NumberState),
    ContactIsDnd,
    ContactIsDoNotSend,
    HumanHandoff,
    MessagingLimitReached,
    WindowClosed { last_inbound_at: Option<DateTime<Utc>> },
    NotOnInstagram(ContentKind),
    TemplateMissing,
    TemplateNotApproved(TemplateStatus),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NumberNotActive(state) => write!(f, "the number is {state:?}, not ACTIVE"),
            Self::ContactIsDnd => write!(f, "the contact is tagged dnd, which blocks automated sends"),
            Self::ContactIsDoNotSend => write!(f, "the contact is tagged do-not-send, which blocks broadcasts"),
            Self::MessagingLimitReached => write!(
                f,
                "Meta's messaging limit for the business portfolio is reached (unique customers sent templates outside their 24-hour window, in the last 24 hours); see the number's messaging_limit"
            ),
            Self::HumanHandoff => {
                write!(f, "a human took over the conversation (human handoff), which stops its automations")
            }
            Self::WindowClosed { last_inbound_at: Some(at) } => write!(
                f,
                "the 24-hour customer service window closed at {}; only an approved template may be sent",
                window_closes_at(*at)
            ),
            Self::WindowClosed { last_inbound_at: None } => {
                write!(
                    f,
                    "the customer never wrote, so there is no 24-hour window; only an approved template may be sent"
                )
            }
            Self::NotOnInstagram(kind) => {
                let what = match kind {
                    ContentKind::Template => "templates",
                    ContentKind::Interactive => "interactive messages (buttons, lists)",
                    ContentKind::WhatsAppFlow => "WhatsApp Flows",
                    ContentKind::FreeForm => "such messages",
                };
                write!(f, "Instagram has no {what}; the node is WhatsApp-only")
            }
            Self::TemplateMissing => {
                write!(f, "the template does not exist for this number's WhatsApp Business Account")
            }
            Self::TemplateNotApproved(status) => write!(f, "the template is {status:?}, not APPROVED"),
        }
    }
}

/// Whether a send counts toward Meta's messaging limit when it is sent: a template outside the
/// customer's 24-hour window, except a broadcast's (counted when the broadcast fans out).
pub fn counts_toward_messaging_limit(
    sent_by: SentBy,
    kind: ContentKind,
    last_inbound_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    kind == ContentKind::Template && sent_by != SentBy::Broadcast && !is_window_open(last_inbound_at, now)
}

/// What the inbox composer can tell a human before anything is queued: on Instagram only
/// free-form messages exist, and free-form needs the 24-hour window (a template does not).
/// The rest (number state, template status) is checked again when the message is sent.
pub fn human_may_compose(
    channel: Channel,
    kind: ContentKind,
    last_inbound_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if channel == Channel::Instagram && kind != ContentKind::FreeForm {
        return Err(Refusal::NotOnInstagram(kind));
    }
    if kind == ContentKind::Template || is_window_open(last_inbound_at, now) {
        Ok(())
    } else {
        Err(Refusal::WindowClosed { last_inbound_at })
    }
}

/// What a flow node can know before it queues a send (FAQ: "How does the DND tag work?", "My
/// automation doesn't fire on Instagram DMs"): Instagram has only free-form messages, `dnd`
/// blocks every automated send, and free-form needs the window (a template does not). The
/// number's state and the template's status are checked again by the sender.
pub fn automation_may_send(
    channel: Channel,
    kind: ContentKind,
    contact_tags: &BTreeSet<String>,
    last_inbound_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if channel == Channel::Instagram && kind != ContentKind::FreeForm {
        return Err(Refusal::NotOnInstagram(kind));
    }
    if contact_tags.contains(DND_TAG) {
        return Err(Refusal::ContactIsDnd);
    }
    if kind == ContentKind::Template || is_window_open(last_inbound_at, now) {
        Ok(())
    } else {
        Err(Refusal::WindowClosed { last_inbound_at })
    }
}

pub fn may_send(facts: &SendFacts) -> Result<(), Refusal> {
    if facts.number_state != NumberState::Active {
        return Err(Refusal::NumberNotActive(facts.number_state));
    }
    if facts.channel == Channel::Instagram && facts.kind != ContentKind::FreeForm {
        return Err(Refusal::NotOnInstagram(facts.kind));
    }
    if facts.sent_by != SentBy::Human && facts.contact_tags.contains(DND_TAG) {
        return Err(Refusal::ContactIsDnd);
    }
    if facts.sent_by == SentBy::Broadcast && facts.contact_tags.contains(DO_NOT_SEND_TAG) {
        return Err(Refusal::ContactIsDoNotSend);
    }
    if facts.sent_by == SentBy::Flow && facts.human_handoff {
        return Err(Refusal::HumanHandoff);
    }
    match facts.kind {
        ContentKind::Template => match facts.template_status {
            None => Err(Refusal::TemplateMissing),
            Some(TemplateStatus::Approved) if facts.new_customers_left == Some(0) => {
                Err(Refusal::MessagingLimitReached)
            }
            Some(TemplateStatus::Approved) => Ok(()),
            Some(status) => Err(Refusal::TemplateNotApproved(status)),
        },
        _ if is_window_open(facts.last_inbound_at, facts.now) => Ok(()),
        _ => Err(Refusal::WindowClosed { last_inbound_at: facts.last_inbound_at }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn facts() -> SendFacts {
        let now = DateTime::from_timestamp(1_795_680_000, 0).unwrap();
        SendFacts {
            channel: Channel::WhatsApp,
            sent_by: SentBy::Flow,
            kind: ContentKind::FreeForm,
            number_state: NumberState::Active,
            contact_tags: BTreeSet::new(),
            last_inbound_at: Some(now - Duration::hours(2)),
            human_handoff: false,
            now,
            template_status: None,
            new_customers_left: None,
        }
    }

    #[test]
    fn the_composer_points_to_templates_outside_the_window_and_has_none_on_instagram() {
        let now = DateTime::from_timestamp(1_795_680_000, 0).unwrap();
        let yesterday = Some(now - Duration::hours(25));
        assert!(matches!(
            human_may_compose(Channel::WhatsApp, ContentKind::FreeForm, yesterday, now),
            Err(Refusal::WindowClosed { .. })
        ));
        assert_eq!(human_may_compose(Channel::WhatsApp, ContentKind::Template, yesterday, now), Ok(()));
        assert_eq!(
            human_may_compose(Channel::Instagram, ContentKind::Template, Some(now), now),
            Err(Refusal::NotOnInstagram(ContentKind::Template))
        );
    }

    fn tagged(mut f: SendFacts, tag: &str) -> SendFacts {
        f.contact_tags.insert(tag.into());
        f
    }

    #[test]
    fn free_form_goes_out_inside_the_window() {
        assert_eq!(may_send(&facts()), Ok(()));
    }

    #[test]
    fn free_form_outside_the_window_is_refused_with_the_reason() {
        let mut f = facts();
        f.last_inbound_at = Some(f.now - Duration::hours(25));
        let refusal = may_send(&f).unwrap_err();
        assert!(refusal.to_string().contains("only an approved template"));
    }

    #[test]
    fn interactive_and_flow_messages_also_need_the_window() {
        for kind in [ContentKind::Interactive, ContentKind::WhatsAppFlow] {
            let mut f = facts();
            f.kind = kind;
            f.last_inbound_at = None;
            assert!(matches!(may_send(&f), Err(Refusal::WindowClosed { .. })));
        }
    }

    #[test]
    fn an_approved_template_goes_out_outside_the_window() {
        let mut f = facts();
        f.kind = ContentKind::Template;
        f.last_inbound_at = None;
        f.template_status = Some(TemplateStatus::Approved);
        assert_eq!(may_send(&f), Ok(()));
    }

    #[test]
    fn a_template_must_exist_and_be_approved() {
        let mut f = facts();
        f.kind = ContentKind::Template;
        assert_eq!(may_send(&f), Err(Refusal::TemplateMissing));
        f.template_status = Some(TemplateStatus::Paused);
        assert_eq!(may_send(&f), Err(Refusal::TemplateNotApproved(TemplateStatus::Paused)));
    }

    #[test]
    fn dnd_blocks_flows_broadcasts_and_smart_retry_resends() {
        for sent_by in [SentBy::Flow, SentBy::SmartRetry, SentBy::Broadcast] {
            let mut f = tagged(facts(), DND_TAG);
            f.sent_by = sent_by;
            assert_eq!(may_send(&f), Err(Refusal::ContactIsDnd));
        }
    }

    #[test]
    fn dnd_never_blocks_a_human_reply_from_the_inbox() {
        let mut f = tagged(facts(), DND_TAG);
        f.sent_by = SentBy::Human;
        assert_eq!(may_send(&f), Ok(()));
    }

    #[test]
    fn do_not_send_blocks_broadcasts_only() {
        let mut f = tagged(facts(), DO_NOT_SEND_TAG);
        assert_eq!(may_send(&f), Ok(()), "a flow reply still goes");
        f.sent_by = SentBy::Broadcast;
        assert_eq!(may_send(&f), Err(Refusal::ContactIsDoNotSend));
    }

    #[test]
    fn once_an_agent_takes_over_no_message_of_a_flow_goes_out_not_even_its_templates() {
        let mut f = facts();
        f.human_handoff = true;
        assert_eq!(may_send(&f), Err(Refusal::HumanHandoff));
        f.kind = ContentKind::Template;
        f.template_status = Some(TemplateStatus::Approved);
        assert_eq!(may_send(&f), Err(Refusal::HumanHandoff));
    }

    #[test]
    fn a_handoff_stops_flows_only_not_the_agents_own_replies_their_retries_or_broadcasts() {
        for sent_by in [SentBy::Human, SentBy::SmartRetry, SentBy::Broadcast] {
            let mut f = facts();
            f.human_handoff = true;
            f.sent_by = sent_by;
            assert_eq!(may_send(&f), Ok(()), "{sent_by:?}");
        }
    }

    #[test]
    fn templates_outside_the_window_count_toward_metas_messaging_limit_except_a_broadcasts() {
        let f = facts();
        let (inside, outside) = (f.last_inbound_at, Some(f.now - Duration::hours(25)));
        for sent_by in [SentBy::Human, SentBy::Flow, SentBy::SmartRetry] {
            assert!(counts_toward_messaging_limit(sent_by, ContentKind::Template, outside, f.now), "{sent_by:?}");
            assert!(counts_toward_messaging_limit(sent_by, ContentKind::Template, None, f.now), "never wrote");
            assert!(!counts_toward_messaging_limit(sent_by, ContentKind::Template, inside, f.now), "inside the window");
        }
        assert!(!counts_toward_messaging_limit(SentBy::Broadcast, ContentKind::Template, outside, f.now), "at fan-out");
        assert!(!counts_toward_messaging_limit(SentBy::Human, ContentKind::FreeForm, outside, f.now));
    }

    #[test]
    fn a_new_customer_over_the_messaging_limit_gets_no_template() {
        let mut f = facts();
        f.kind = ContentKind::Template;
        f.template_status = Some(TemplateStatus::Approved);
        f.new_customers_left = Some(0);
        assert_eq!(may_send(&f), Err(Refusal::MessagingLimitReached));
        f.new_customers_left = Some(1);
        assert_eq!(may_send(&f), Ok(()));
    }

    #[test]
    fn instagram_has_no_templates_interactive_or_flows() {
        for kind in [ContentKind::Template, ContentKind::Interactive, ContentKind::WhatsAppFlow] {
            let mut f = facts();
            f.channel = Channel::Instagram;
            f.kind = kind;
            f.template_status = Some(TemplateStatus::Approved);
            assert_eq!(may_send(&f), Err(Refusal::NotOnInstagram(kind)));
        }
    }

    #[test]
    fn a_number_that_is_not_active_does_not_send() {
        for state in [NumberState::Draft, NumberState::Error, NumberState::Disconnected] {
            let mut f = facts();
            f.number_state = state;
            assert_eq!(may_send(&f), Err(Refusal::NumberNotActive(state)));
        }
    }
}
