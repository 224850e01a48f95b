"""Prints the resource types moto's CloudFormation can create, one a line,
with the candidate attributes moto's Fn::GetAtt supports for each.

Source: moto/cloudformation/parsing.py, get_model_map() (every
CloudFormationModel subclass, keyed by cloudformation_type()), plus
NULL_MODELS (types moto accepts and ignores). The output is embedded in
local-resources as data/moto-cfn-types.txt; the crate's test
`moto_types_match_installed_moto` regenerates it with the installed moto.

  .tools/venv/bin/python crates/local-resources/gen/moto_cfn_types.py \
      > crates/local-resources/data/moto-cfn-types.txt
"""
import warnings

warnings.filterwarnings("ignore")
import moto  # noqa: E402
from moto.cloudformation import parsing  # noqa: E402

CANDIDATES = ["Arn", "QueueName", "StreamArn", "TopicName", "Name", "DomainName", "RegionalDomainName", "WebsiteURL", "Id"]

print(f"# moto {moto.__version__}: resource types its CloudFormation creates (get_model_map) and ignores (NULL_MODELS)")
print("# <type> <attributes Fn::GetAtt supports, of: " + " ".join(CANDIDATES) + "> (? = moto declares none)")
lines = []
for name, model in parsing.get_model_map().items():
    attrs = []
    try:
        undeclared = model.has_cfn_attr("NoSuchAttributeAnywhere")
    except Exception:
        undeclared = False
    if undeclared:
        # has_cfn_attr answers yes to anything: moto declares nothing.
        lines.append(name + " ?")
        continue
    for a in CANDIDATES:
        try:
            if model.has_cfn_attr(a):
                attrs.append(a)
        except Exception:
            pass
    lines.append(" ".join([name] + attrs))
for name in parsing.NULL_MODELS:
    lines.append(name)
for line in sorted(set(lines)):
    print(line)
