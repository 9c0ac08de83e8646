//! Human handoff (FAQ: "An agent replied and the bot went silent. Why?"): when a human sends
//! TEXT, MEDIA or INTERACTIVE from the inbox, the conversation is handed to the human and any
//! flow stops on its next tick, so a bot never talks over a person. A TEMPLATE does not: it is
//! proactive outreach (the welcome card that asks a question), and the bot is meant to answer
//! the customer's reply to it. A toggle in the conversation header turns handoff off again.

use super::send::ContentKind;

/// Whether a human sending this kind of message takes the conversation over from the bot.
pub fn human_send_takes_over(kind: ContentKind) -> bool {
    match kind {
        ContentKind::FreeForm | ContentKind::Interactive | ContentKind::WhatsAppFlow => true,
        ContentKind::Template => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_human_text_media_or_interactive_message_takes_the_conversation_over() {
        assert!(human_send_takes_over(ContentKind::FreeForm));
        assert!(human_send_takes_over(ContentKind::Interactive));
    }

    #[test]
    fn a_template_from_the_inbox_leaves_the_bot_running() {
        assert!(!human_send_takes_over(ContentKind::Template));
    }
}
