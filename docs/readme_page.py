"""MkDocs hook: the site's home page is the repository's README.md (one text for both; mkdocs.yml `hooks:`), its
links into docs/ made relative to the site and its links to other files of the repository, which the site does not
carry, shown as their paths."""

import re
from pathlib import Path

LINK = re.compile(r"\[([^\]]+)\]\(([^)#:]+)\)")  # a relative link [text](path), no scheme, no anchor


def _site_link(match: re.Match) -> str:
    text, path = match.groups()
    if path.startswith("docs/"):
        return f"[{text}]({path.removeprefix('docs/')})"
    return f"`{path}`" if text.strip("`") == path else f"{text} (`{path}`)"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    text = (Path(config.config_file_path).parent / "README.md").read_text()
    text = re.sub(r"^The documentation is in .*?\n\n", "", text, flags=re.S | re.M)  # the site is the documentation
    return LINK.sub(_site_link, text)
