//! What a send job sends, and its Graph API body: the WhatsApp Cloud API shape
//! (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>) or the
//! Instagram Messaging shape. Every WhatsApp send carries our job id in
//! `biz_opaque_callback_data`, so its status webhooks lead back to the job.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::Channel;
use crate::policy::send::ContentKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    pub title: String,
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        body: String,
        #[serde(default)]
        preview_url: bool,
    },
    /// `kind`: image, audio, video, document or sticker; by Meta media `id` or public `link`.
    Media {
        kind: String,
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        link: Option<String>,
        #[serde(default)]
        caption: Option<String>,
        #[serde(default)]
        filename: Option<String>,
    },
    Buttons {
        body: String,
        buttons: Vec<Button>,
    },
    List {
        body: String,
        button: String,
        sections: Vec<ListSection>,
    },
    Template {
        name: String,
        language: String,
        #[serde(default)]
        components: Vec<Value>,
    },
    /// A WhatsApp Flow, opened from a call-to-action button.
    WhatsAppFlow {
        body: String,
        flow_id: String,
        flow_cta: String,
        #[serde(default)]
        flow_token: Option<String>,
    },
}

impl OutboundContent {
    pub fn kind(&self) -> ContentKind {
        match self {
            Self::Text { .. } | Self::Media { .. } => ContentKind::FreeForm,
            Self::Buttons { .. } | Self::List { .. } => ContentKind::Interactive,
            Self::Template { .. } => ContentKind::Template,
            Self::WhatsAppFlow { .. } => ContentKind::WhatsAppFlow,
        }
    }

    /// The Graph API body for sending this to `to`.
    pub fn graph_body(&self, channel: Channel, to: &str, job_id: &str) -> Value {
        match channel {
            Channel::WhatsApp => self.whatsapp_body(to, job_id),
            Channel::Instagram => self.instagram_body(to),
        }
    }

    fn whatsapp_body(&self, to: &str, job_id: &str) -> Value {
        let (kind, payload) = match self {
            Self::Text { body, preview_url } => ("text", json!({ "body": body, "preview_url": preview_url })),
            Self::Media { kind, id, link, caption, filename } => {
                let mut media = serde_json::Map::new();
                if let Some(id) = id {
                    media.insert("id".into(), json!(id));
                } else if let Some(link) = link {
                    media.insert("link".into(), json!(link));
                }
                if let Some(caption) = caption {
                    media.insert("caption".into(), json!(caption));
                }
                if let Some(filename) = filename {
                    media.insert("filename".into(), json!(filename));
                }
                (kind.as_str(), Value::Object(media))
            }
            Self::Buttons { body, buttons } => (
                "interactive",
                json!({
                    "type": "button",
                    "body": { "text": body },
                    "action": { "buttons": buttons.iter().map(|b| json!({
                        "type": "reply", "reply": { "id": b.id, "title": b.title }
                    })).collect::<Vec<_>>() },
                }),
            ),
            Self::List { body, button, sections } => (
                "interactive",
                json!({ "type": "list", "body": { "text": body }, "action": { "button": button, "sections": sections } }),
            ),
            Self::Template { name, language, components } => {
                ("template", json!({ "name": name, "language": { "code": language }, "components": components }))
            }
            Self::WhatsAppFlow { body, flow_id, flow_cta, flow_token } => (
                "interactive",
                json!({
                    "type": "flow",
                    "body": { "text": body },
                    "action": { "name": "flow", "parameters": {
                        "flow_message_version": "3", "flow_id": flow_id, "flow_cta": flow_cta,
                        "flow_token": flow_token.clone().unwrap_or_else(|| job_id.to_owned()),
                    }},
                }),
            ),
        };
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": kind,
            kind: payload,
            "biz_opaque_callback_data": job_id,
        })
    }

    fn instagram_body(&self, to: &str) -> Value {
        let message = match self {
            Self::Media { kind, link, .. } => {
                json!({ "attachment": { "type": kind, "payload": { "url": link } } })
            }
            Self::Text { body, .. } => json!({ "text": body }),
            // The send policy refuses the rest on Instagram before a body is ever built.
            other => json!({ "text": format!("{other:?}") }),
        };
        json!({ "recipient": { "id": to }, "message": message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_carries_our_job_id_for_its_status_webhooks() {
        let body = OutboundContent::Text { body: "hi".into(), preview_url: false }.graph_body(
            Channel::WhatsApp,
            "16505551234",
            "job-1",
        );
        assert_eq!(body["type"], "text");
        assert_eq!(body["text"]["body"], "hi");
        assert_eq!(body["biz_opaque_callback_data"], "job-1");
        assert_eq!(body["messaging_product"], "whatsapp");
    }

    #[test]
    fn a_template_names_its_language_and_components() {
        let content = OutboundContent::Template {
            name: "order_update".into(),
            language: "en_US".into(),
            components: vec![json!({ "type": "body", "parameters": [{ "type": "text", "text": "42" }] })],
        };
        let body = content.graph_body(Channel::WhatsApp, "1", "job");
        assert_eq!(body["template"]["language"]["code"], "en_US");
        assert_eq!(body["template"]["components"][0]["parameters"][0]["text"], "42");
        assert_eq!(content.kind(), ContentKind::Template);
    }

    #[test]
    fn buttons_lists_media_and_flows_have_metas_shapes() {
        let buttons = OutboundContent::Buttons {
            body: "Track?".into(),
            buttons: vec![Button { id: "track".into(), title: "Track".into() }],
        };
        assert_eq!(
            buttons.graph_body(Channel::WhatsApp, "1", "j")["interactive"]["action"]["buttons"][0]["reply"]["id"],
            "track"
        );
        let media = OutboundContent::Media {
            kind: "document".into(),
            id: None,
            link: Some("https://example.com/i.pdf".into()),
            caption: None,
            filename: Some("i.pdf".into()),
        };
        assert_eq!(media.graph_body(Channel::WhatsApp, "1", "j")["document"]["link"], "https://example.com/i.pdf");
        let flow = OutboundContent::WhatsAppFlow {
            body: "Book".into(),
            flow_id: "123".into(),
            flow_cta: "Open".into(),
            flow_token: None,
        };
        assert_eq!(
            flow.graph_body(Channel::WhatsApp, "1", "j")["interactive"]["action"]["parameters"]["flow_token"],
            "j"
        );
    }

    #[test]
    fn instagram_sends_use_the_messaging_api_shape() {
        let body = OutboundContent::Text { body: "hi".into(), preview_url: false }.graph_body(
            Channel::Instagram,
            "igsid",
            "j",
        );
        assert_eq!(body, json!({ "recipient": { "id": "igsid" }, "message": { "text": "hi" } }));
    }
}
