"""The export flows and the stages of their pipe: sources (read) → formats (write) →
destinations (deliver) → runs (record), with alerts on the way. Subpackages import nothing in
their `__init__`: each module is imported by its own name, so nothing loads a stage it does not
use."""
