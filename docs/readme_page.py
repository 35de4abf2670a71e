"""MkDocs hook: the site's home page is the repository's README.md, its links made relative to docs/ (one text for
both; mkdocs.yml `hooks:`)."""

import re
from pathlib import Path


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    readme = Path(config.config_file_path).parent / "README.md"
    text = readme.read_text()
    text = re.sub(r"^The documentation is in .*?\n\n", "", text, flags=re.S | re.M)  # this is the documentation
    return re.sub(r"\]\(docs/", "](", text)
