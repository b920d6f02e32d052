# ruff: noqa: RUF001 - prompts in other scripts carry their own full-width punctuation
"""Real-looking chat requests in several scripts, code and tool definitions (issue 21, item 2).

Written for this project: short and long prompts as people send them (questions, instructions,
pasted text, logs, code), in English, German, French, Spanish, Vietnamese, Chinese, Japanese,
Korean, Russian, Ukrainian, Arabic, Hebrew, Hindi, Thai and with emoji, and requests carrying tool
definitions. ``requests()`` builds every request the corpus test measures: each text alone as a
one-message chat, several texts as a conversation with a system prompt, and the tool requests.
"""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, list[str]] = {
    "english": [
        "hi",
        "Thanks!",
        "What is the capital of Australia?",
        "Summarise the following meeting notes in three bullet points for the leadership team.",
        "Can you explain the difference between a mutex and a semaphore, with an example in C?",
        "I'm getting 'permission denied (publickey)' when I push to GitHub. I already added my "
        "SSH key to the agent. What else should I check?",
        "Write a polite email to a customer whose order #48213 was delayed by two weeks because "
        "of a supplier issue. Offer a 15% discount on the next purchase.",
        "Translate to plain English: 'The indemnifying party shall hold harmless the indemnified "
        "party from and against any and all claims, liabilities, damages and expenses.'",
        "Our Q3 revenue was $4.2M, up 18% year over year, while operating costs rose 7%. Draft "
        "two sentences for the board report.",
        "Give me a 5-day itinerary for Lisbon in October, vegetarian restaurants included.",
        "Classify the sentiment of this review as positive, negative or neutral: The battery "
        "lasts all day but the screen scratches far too easily.",
        "Extract the dates, amounts and counterparties from: On 2026-03-14 ACME Corp paid "
        "EUR 12,500.00 to Globex Ltd (invoice INV-2026-0311).",
        "Internationalization, containerization and observability: define each term in one line.",
        "2025-11-02T08:15:44.123Z ERROR [payment-svc] Timeout after 30000ms calling "
        "https://api.example.com/v2/charges (attempt 3/3), "
        "trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
        "Please rewrite this paragraph so that a twelve-year-old can understand it: "
        "Photosynthesis is the process by which green plants use sunlight to synthesise "
        "nutrients from carbon dioxide and water, releasing oxygen as a by-product.",
    ],
    "german": [
        "Wie spät ist es in Tokio, wenn es in Berlin 14 Uhr ist?",
        "Fasse den folgenden Text in zwei Sätzen zusammen: Die Bundesregierung hat am Mittwoch "
        "ein Gesetz zur Beschleunigung der Genehmigungsverfahren für Windkraftanlagen beschlossen.",
        "Schreibe eine Kündigung für meinen Fitnessstudio-Vertrag zum nächstmöglichen Zeitpunkt.",
        "Erkläre mir bitte den Unterschied zwischen Grundschuld und Hypothek.",
    ],
    "french": [
        "Bonjour, peux-tu m'aider à rédiger une lettre de motivation pour un poste d'ingénieur ?",
        "Quelle est la différence entre « pourtant » et « cependant » ?",
        "Résume cet article en français courant : la Banque centrale européenne a décidé "
        "jeudi de maintenir ses taux directeurs inchangés, malgré une inflation qui ralentit.",
    ],
    "spanish": [
        "¿Cuál es la mejor manera de aprender a programar si nunca he escrito código?",
        "Redacta un mensaje para avisar a los vecinos de que el ascensor estará en reparación "
        "del lunes al miércoles.",
        "Explícame qué es la inflación subyacente y por qué importa.",
    ],
    "vietnamese": [
        "Xin chào, bạn có thể giúp tôi viết một email xin nghỉ phép ba ngày không?",
        "Giải thích ngắn gọn sự khác nhau giữa lãi suất cố định và lãi suất thả nổi.",
    ],
    "chinese": [
        "你好",
        "请把下面这段话翻译成英文：我们将在下周三上午十点召开项目启动会议。",
        "帮我写一份关于数据安全培训的通知，发给全体员工，语气正式。",
        "解释一下什么是机器学习中的过拟合，以及常见的解决方法。",
        "北京今天的天气怎么样？需要带伞吗？",
        "请总结以下客户投诉的主要问题：快递延误了五天，包装破损，客服电话一直打不通。",
    ],
    "japanese": [
        "こんにちは",
        "明日の会議の議事録を箇条書きでまとめてください。",
        "この文章をもっと丁寧な敬語に書き直してください：資料を送ったので確認してください。",
        "東京から大阪まで新幹線で何時間かかりますか？",
        "カタカナ語の多いビジネス文書を、わかりやすい日本語に言い換えてください。",
    ],
    "korean": [
        "안녕하세요",
        "다음 문장을 영어로 번역해 주세요: 배송이 지연되어 죄송합니다.",
        "회의록을 세 줄로 요약해 주세요. 참석자는 김 부장, 이 과장, 박 대리입니다.",
    ],
    "russian": [
        "Привет!",
        "Объясни простыми словами, что такое квантовая запутанность.",
        "Составь, пожалуйста, план статьи о кибербезопасности для малого бизнеса.",
        "Переведи на английский: Мы получили ваше письмо и ответим в течение двух рабочих дней.",
        "Почему при запуске сервера появляется ошибка «адрес уже используется» и как её исправить?",
    ],
    "ukrainian": [
        "Допоможи скласти резюме для посади бухгалтера з досвідом п'ять років.",
        "Що означає прислів'я «Не кажи гоп, поки не перескочиш»?",
    ],
    "arabic": [
        "مرحبا",
        "ما هي عاصمة المغرب؟",
        "اكتب رسالة شكر قصيرة لفريق العمل على إنجاز المشروع في الموعد المحدد.",
        "لخص النص التالي في جملتين: أعلنت وزارة الصحة عن حملة تطعيم جديدة تبدأ الأسبوع المقبل.",
        "اشرح الفرق بين الذكاء الاصطناعي والتعلم الآلي بلغة بسيطة.",
    ],
    "hebrew": [
        "שלום, אתה יכול לעזור לי לכתוב מכתב תודה למורה?",
        "מה ההבדל בין ריבית קבועה לריבית משתנה במשכנתא?",
    ],
    "hindi": [
        "नमस्ते",
        "भारत की राजधानी क्या है?",
        "कृपया इस पैराग्राफ का सारांश दो वाक्यों में लिखिए: सरकार ने किसानों के लिए नई योजना की घोषणा की है।",
        "मुझे एक छुट्टी के आवेदन का प्रारूप चाहिए, तीन दिन के लिए।",
        "मशीन लर्निंग और डीप लर्निंग में क्या अंतर है? सरल भाषा में समझाइए।",
    ],
    "thai": [
        "สวัสดีครับ",
        "ช่วยเขียนอีเมลขอบคุณลูกค้าที่สั่งซื้อสินค้าให้หน่อยครับ",
    ],
    "emoji": [
        "🎉🎉🎉",
        "Happy birthday!!! 🥳🎂🎁 Hope you have an amazing day ❤️",
        "Rate my day: ☕️ → 💻 → 😫 → 🍕 → 😴",
        "Can you turn this into emoji only: I flew to Paris, ate croissants and saw the tower.",
        "👍🏽 ok, ship it 🚀🚀",
        "家族旅行 👨‍👩‍👧‍👦 の計画を立てて 🗾✈️",
    ],
    "code": [
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = "
        "b, a + b\n    return a\n"
        "\nWhy is this slow for n = 10**6? Suggest a faster approach.",
        "Fix the bug:\n```js\nconst total = items.reduce((sum, item) => { sum + item.price }, 0);"
        "\nconsole.log(`Total: ${total.toFixed(2)}`);\n```",
        "SELECT u.id, u.email, COUNT(o.id) AS orders\nFROM users u\nLEFT JOIN "
        "orders o ON o.user_id "
        "= u.id\nWHERE u.created_at >= '2026-01-01'\nGROUP BY u.id, u.email\nHAVING COUNT(o.id) > 3"
        "\nORDER BY orders DESC;\n-- make this faster on 50M rows",
        "```rust\nfn main() {\n    let v: Vec<i32> = (1..=10).filter(|x| x % 2 == 0).collect();\n"
        '    println!("{:?}", v);\n}\n```\nExplain each line.',
        "```yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  "
        "replicas: 3\n  template:\n    spec:\n      containers:\n        - name: web\n          "
        "image: nginx:1.27\n          ports:\n            - containerPort: 80\n```\nAdd a "
        "readiness probe.",
        'Traceback (most recent call last):\n  File "/app/main.py", line 42, in <module>\n    '
        'result = process(data)\n  File "/app/worker.py", line 17, in process\n    return '
        "data['items'][0]\nKeyError: 'items'\nWhat does this mean?",
        "#include <stdio.h>\nint main(void) {\n    char buf[8];\n    gets(buf);\n    "
        'printf("%s\\n", buf);\n    return 0;\n}\n// is this safe?',
        '{"user": {"id": 1042, "name": "Ana", "roles": ["admin", "billing"], "active": true, '
        '"last_login": "2026-10-30T12:01:55Z"}}\nConvert this JSON to a TypeScript interface.',
        "$ kubectl get pods -n prod\nNAME                     READY   STATUS             RESTARTS\n"
        "api-7d9f8b6c5d-x2kqp    0/1     CrashLoopBackOff   12\nweb-5c6d7f8e9a-b4mzn    1/1"
        "     Running            0\nwhy is api crashing?",
    ],
}

SYSTEM = [
    "You are a helpful assistant.",
    "You are a customer-support agent for Northwind Bank. Answer briefly and never ask for a "
    "full card number or PIN.",
    "Du bist ein sachlicher Assistent. Antworte immer auf Deutsch.",
    "你是一名专业的翻译，请准确、自然地翻译用户提供的内容。",
]

TOOLS: list[list[dict[str, Any]]] = [
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "City name, e.g. Paris"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["city"],
                },
            },
        }
    ],
    [
        {
            "type": "function",
            "function": {
                "name": "search_orders",
                "description": "Search a customer's orders by status and date range.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "customer_id": {"type": "string", "description": "The customer id"},
                        "status": {
                            "type": "string",
                            "enum": ["pending", "shipped", "delivered", "cancelled"],
                            "description": "Order status to filter on",
                        },
                        "since": {"type": "string", "description": "ISO date, inclusive"},
                        "limit": {"type": "integer", "description": "At most this many"},
                    },
                    "required": ["customer_id"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "refund_order",
                "description": "Refund an order in full or in part.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "order_id": {"type": "string", "description": "The order to refund"},
                        "amount": {"type": "number", "description": "Amount in the currency"},
                        "reason": {"type": "string", "description": "Shown to the customer"},
                    },
                    "required": ["order_id", "amount"],
                },
            },
        },
    ],
    [
        {
            "type": "function",
            "function": {
                "name": "run_sql",
                "description": "Run a read-only SQL query on the analytics warehouse.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "One SELECT statement"}
                    },
                    "required": ["query"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "buscar_vuelos",
                "description": "Busca vuelos entre dos aeropuertos en una fecha.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "origen": {"type": "string", "description": "Código IATA de origen"},
                        "destino": {"type": "string", "description": "Código IATA de destino"},
                        "fecha": {"type": "string", "description": "Fecha AAAA-MM-DD"},
                    },
                    "required": ["origen", "destino", "fecha"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "翻译",
                "description": "把文本翻译成目标语言。",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "文本": {"type": "string", "description": "要翻译的文本"},
                        "目标语言": {"type": "string", "enum": ["英语", "日语", "法语"]},
                    },
                    "required": ["文本", "目标语言"],
                },
            },
        },
    ],
]


def requests() -> list[tuple[str, dict[str, Any]]]:
    """Every request the corpus test measures, each named by what it holds."""
    found: list[tuple[str, dict[str, Any]]] = []
    for script, texts in TEXTS.items():
        for number, text in enumerate(texts):
            body = {"messages": [{"role": "user", "content": text}]}
            found.append((f"{script}-{number}", body))
        conversation = [{"role": "system", "content": SYSTEM[len(found) % len(SYSTEM)]}]
        for number, text in enumerate(texts[:4]):
            conversation.append({"role": "user", "content": text})
            conversation.append({"role": "assistant", "content": texts[-1 - number]})
        found.append((f"{script}-conversation", {"messages": conversation}))
        found.append(
            (f"{script}-pasted", {"messages": [{"role": "user", "content": "\n\n".join(texts)}]})
        )
    for number, tools in enumerate(TOOLS):
        for script in ("english", "chinese", "arabic"):
            body = {
                "messages": [
                    {"role": "system", "content": SYSTEM[0]},
                    {"role": "user", "content": TEXTS[script][2]},
                ],
                "tools": tools,
            }
            found.append((f"tools-{number}-{script}", body))
    return found
