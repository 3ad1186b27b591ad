from clauditor.launch import main

main()
