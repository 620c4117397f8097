import { regexDetector, type Detector } from './detect.js'

/**
 * Prompt-injection rules. `standard` holds the direct, high-confidence patterns that are injection
 * wherever they appear; `strict` adds patterns that are ordinary in a user's own words but suspicious
 * inside tool results or retrieved documents (indirect injection), where the sandwich scans harder.
 */
const OVERRIDE_VERB = String.raw`(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|discard)`
const PRIOR = String.raw`(?:all\s+|any\s+|the\s+|your\s+|these\s+|those\s+|of\s+)*(?:previous|prior|above|earlier|preceding|original|initial|system|existing|former|old)`
const INSTRUCTIONS = String.raw`(?:instructions?|directions|prompts?|rules|directives|guidelines|commands|context|messages?|guardrails|restrictions)`

const STANDARD: Detector[] = [
  regexDetector(
    'injection.ignore_instructions',
    'INJECTION',
    new RegExp(String.raw`\b${OVERRIDE_VERB}\s+(?:\w+\s+){0,2}?${PRIOR}\s+(?:\w+\s+)?${INSTRUCTIONS}\b`, 'i')
  ),
  regexDetector(
    'injection.role_hijack',
    'INJECTION',
    new RegExp(
      String.raw`\b(?:you\s+are\s+now\s+(?:in\s+)?(?:DAN|developer\s+mode|jailbroken|unrestricted|an?\s+(?:unfiltered|unrestricted|uncensored|evil))|(?:enable|activate|enter)\s+(?:DAN|developer|god|jailbreak)\s+mode|act\s+as\s+(?:if\s+you\s+(?:have|had)\s+no|an?\s+(?:unfiltered|unrestricted|uncensored))\b|pretend\s+(?:that\s+)?you\s+(?:have|are\s+under)\s+no\s+(?:rules|restrictions|guidelines)|from\s+now\s+on,?\s+you\s+(?:will|must|are)\s+(?:ignore|no\s+longer|not\s+bound|free\s+from))`,
      'i'
    )
  ),
  regexDetector(
    'injection.system_prompt_exfiltration',
    'INJECTION',
    new RegExp(
      String.raw`\b(?:(?:reveal|print|show|repeat|output|display|leak|dump|tell\s+me|give\s+me|what\s+(?:is|are|was|were))\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|exact\s+|entire\s+|original\s+|hidden\s+|secret\s+|initial\s+)*(?:system\s+(?:prompt|message|instructions?)|developer\s+(?:prompt|message|instructions?)|hidden\s+(?:prompt|instructions?)|initial\s+(?:prompt|instructions?))|repeat\s+(?:everything|all\s+the\s+text|the\s+words)\s+above|(?:print|output|repeat)\s+(?:everything|all)\s+(?:before|above)\s+(?:this|the\s+first))`,
      'i'
    )
  )
]

const STRICT_ONLY: Detector[] = [
  // Chat-template or role markers inside content: text pretending to start a new turn.
  regexDetector(
    'injection.role_markers',
    'INJECTION',
    /(?:<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\|start_header_id\|>|\[INST\]|<<SYS>>|(?:^|\n)\s*#{0,3}\s*(?:system|assistant)\s*:\s*\S|<\/?system>)/i
  ),
  // Instructions addressed to the model from inside data.
  regexDetector(
    'injection.embedded_instructions',
    'INJECTION',
    /\b(?:new|updated|important|additional|real)\s+instructions?\s*:|\b(?:ai|assistant|llm|language\s+model|chatbot)s?\s*[,:]\s*(?:you\s+must|please|now|ignore|do\s+not)|\bdo\s+not\s+(?:tell|inform|mention\s+(?:this|it)\s+to)\s+the\s+user\b|\bwithout\s+(?:telling|informing|notifying)\s+the\s+user\b/i
  ),
  // Exfiltration through links or tools: send data somewhere, or a markdown image with data in its URL.
  regexDetector(
    'injection.exfiltration',
    'INJECTION',
    /!\[[^\]]*\]\(https?:\/\/[^)\s]+\?[^)\s]*=[^)\s]*\)|\b(?:send|forward|post|upload|email|exfiltrate)\s+(?:all\s+|the\s+|your\s+|this\s+|any\s+)*(?:conversation(?:\s+history)?|chat(?:\s+history|\s+log)?|messages|credentials|api\s+keys?|passwords?|secrets?|tokens?|data|files?)\s+to\s+(?:https?:\/\/|\S+@\S+|the\s+following|this)/i
  ),
  regexDetector(
    'injection.tool_coercion',
    'INJECTION',
    /\b(?:you\s+must|immediately|now)\s+(?:call|invoke|run|execute|use)\s+(?:the\s+)?(?!the\b)(?:[\w-]+\s+){1,2}(?:tool|function)\b/i
  )
]

/**
 * The injection detectors for a scan level.
 *
 * @example
 * injectionDetectors('strict').length > injectionDetectors('standard').length // true
 */
export function injectionDetectors(level: 'off' | 'standard' | 'strict'): Detector[] {
  if (level === 'off') return []
  return level === 'strict' ? [...STANDARD, ...STRICT_ONLY] : STANDARD
}
