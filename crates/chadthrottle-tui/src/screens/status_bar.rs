//! The bottom line: the last outcome or refusal, the name filter, and the keys the
//! current mode takes.

use crate::app::App;
use crate::mode::Mode;
use crate::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// The keys the mode takes (`keys` handles them; the help screen explains them).
fn hints(mode: &Mode) -> &'static str {
    match mode {
        Mode::Normal => {
            "↑↓ select  t throttle  r remove  R rules  g graph  s sort  f freeze  / filter  h help  q quit"
        }
        Mode::Filter => "type a name  Enter keep  Esc clear",
        Mode::Throttle(_) => {
            "←→ what to limit  Tab switch field  Space shared/each  Enter apply  Esc cancel"
        }
        Mode::Rules => "↑↓ select  r remove the rule  Esc back",
        Mode::History => "↑↓ select  Tab today / 7 days / 30 days  Esc back",
        Mode::Help | Mode::Graph | Mode::Backends => "Esc back",
        Mode::Detail(_) => "Tab/←→/1-4 switch tab  ↑↓ scroll  Esc back",
    }
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    // the message first: at 80 columns the hints are what gets cut
    let mut spans = Vec::new();
    if let Some(message) = &app.message {
        let style = if message.error {
            theme.error()
        } else {
            Style::new()
        };
        spans.push(Span::styled(message.text.clone(), style));
        spans.push(Span::raw("  "));
    }
    if app.mode == Mode::Filter || !app.filter.is_empty() {
        spans.push(Span::styled(format!("/{}  ", app.filter), theme.header()));
    }
    spans.push(Span::raw(hints(&app.mode)));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
