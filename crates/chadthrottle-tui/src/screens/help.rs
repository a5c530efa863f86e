//! The help popup: every key of the table and what it does.

use crate::layout::popup;
use crate::theme::Theme;
use ratatui::Frame;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

/// Key and what it does, in the order a newcomer needs them.
const KEYS: [(&str, &str); 17] = [
    (
        "↑ ↓ j k PgUp PgDn",
        "select a process (or the mouse; the wheel scrolls)",
    ),
    ("t", "throttle it: download and upload limits"),
    (
        "  ← → (in t)",
        "limit it, its tree, executable, unit or container",
    ),
    ("r", "remove its limit"),
    ("R", "rules: members and rates; r removes the selected one"),
    ("g", "graph of its last 60 s, with the limit"),
    (
        "Enter",
        "its detail: overview, connections, traffic, system",
    ),
    ("a  → ← Space", "group by application; open / close one"),
    ("l", "all / Internet / local traffic in the table"),
    ("i", "one interface's traffic only (next, then all)"),
    (
        "u  Tab",
        "usage history per application; Tab: 1 / 7 / 30 days",
    ),
    ("b", "backends: which can limit here, and why not"),
    (
        "s / click a header",
        "sort by the next column / that column",
    ),
    ("f", "freeze the order (rows stop moving)"),
    ("/", "filter by name"),
    ("h ?", "this help"),
    ("q Esc Ctrl-C", "quit (limits stay in the kernel)"),
];

pub fn draw(frame: &mut Frame, theme: &Theme) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:>20}  "), theme.header()),
                Span::raw(*what),
            ])
        })
        .collect();
    let area = popup(frame.area(), 76, KEYS.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys ")),
        area,
    );
}
