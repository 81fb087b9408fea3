"""Documentation packs: a version's records gathered for auditors and examiners as HTML, PDF and JSON."""

from riskmodels.services.docpack.contents import SCHEMA, pack_contents, pack_json
from riskmodels.services.docpack.mapping import NO_EVIDENCE, mapping_table
from riskmodels.services.docpack.packs import (
    CONTENT_TYPES,
    FORMATS,
    documentation_pack_render,
    documentation_pack_request,
    documentation_pack_work,
)

__all__ = ["CONTENT_TYPES", "FORMATS", "NO_EVIDENCE", "SCHEMA", "documentation_pack_render",
           "documentation_pack_request", "documentation_pack_work", "mapping_table", "pack_contents", "pack_json"]
